//! The two date formats of WebDAV properties, from a hybrid clock value:
//! RFC 1123 for `getlastmodified`, RFC 3339 for `creationdate`.

/// Bits of a hybrid clock value below the milliseconds (`engine::version`).
const LOGICAL_BITS: u32 = 16;

/// Civil date and time (UTC) of a hybrid clock value.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    weekday: usize,
    hour: u64,
    minute: u64,
    second: u64,
}

fn civil(hlc: u64) -> Civil {
    let seconds = (hlc >> LOGICAL_BITS) / 1000;
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        // 1970-01-01 was a Thursday.
        weekday: ((days + 4).rem_euclid(7)) as usize,
        hour: rest / 3600,
        minute: rest / 60 % 60,
        second: rest % 60,
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`
pub fn rfc1123(hlc: u64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let c = civil(hlc);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[c.weekday],
        c.day,
        MONTHS[c.month as usize - 1],
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

/// `1994-11-06T08:49:37Z`
pub fn rfc3339(hlc: u64) -> String {
    let c = civil(hlc);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hlc(unix_seconds: u64) -> u64 {
        (unix_seconds * 1000 + 999) << LOGICAL_BITS | 7
    }

    #[test]
    fn known_dates() {
        assert_eq!(rfc1123(hlc(784_111_777)), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(rfc3339(hlc(784_111_777)), "1994-11-06T08:49:37Z");
        assert_eq!(rfc1123(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(rfc3339(hlc(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc1123(hlc(4_102_444_799)), "Thu, 31 Dec 2099 23:59:59 GMT");
    }
}
