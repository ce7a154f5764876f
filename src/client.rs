//! The client commands (`put`, `get`, `rm`, `stat`, `ls`, `status`, `admin`): plain
//! HTTP against one node, with a progress bar for large transfers on a
//! terminal.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

/// Bytes from which a transfer shows a progress bar.
const PROGRESS_MIN_BYTES: u64 = 8 << 20;
/// Characters escaped in a key's path segments (`/` is kept: it is part of keys).
const KEY_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'?')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Adds the access key to every request.
struct Authorize(String);

impl ureq::Middleware for Authorize {
    // The signature is ureq's, large error and all.
    #[allow(clippy::result_large_err)]
    fn handle(
        &self,
        request: ureq::Request,
        next: ureq::MiddlewareNext,
    ) -> Result<ureq::Response, ureq::Error> {
        next.handle(request.set("Authorization", &self.0))
    }
}

pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    /// A client of the node at `server`, sending the access key from
    /// `key_file`, else `CAIRN_KEY`, else `DATA/admin-key` when readable.
    pub fn new(server: &str, key_file: Option<&std::path::Path>) -> anyhow::Result<Client> {
        let key =
            match key_file {
                Some(path) => Some(cairn_cluster::read_secret_file(path)?.ok_or_else(|| {
                    anyhow::anyhow!("{} does not exist or is empty", path.display())
                })?),
                None => match std::env::var("CAIRN_KEY") {
                    Ok(key) => Some(key),
                    Err(_) => {
                        let data =
                            std::env::var_os("CAIRN_DATA").unwrap_or_else(|| "./cairn-data".into());
                        let path = std::path::Path::new(&data).join(cairn_cluster::ADMIN_KEY_FILE);
                        cairn_cluster::read_secret_file(&path).ok().flatten()
                    }
                },
            };
        let mut agent = ureq::AgentBuilder::new();
        if let Some(key) = key {
            agent = agent.middleware(Authorize(format!("Bearer {}", key.trim())));
        }
        Ok(Client { base: server.trim_end_matches('/').to_string(), agent: agent.build() })
    }

    fn key_url(&self, target: &str) -> anyhow::Result<String> {
        let Some((domain, key)) = target.split_once('/') else {
            bail!("expected DOMAIN/KEY, got {target:?}");
        };
        Ok(format!("{}/v1/{domain}/{}", self.base, utf8_percent_encode(key, KEY_ESCAPES)))
    }

    pub fn put(&self, target: &str, file: &str, class: Option<&str>) -> anyhow::Result<()> {
        let mut url = self.key_url(target)?;
        if let Some(class) = class {
            url.push_str(&format!("?class={class}"));
        }
        let request = self.agent.put(&url);
        let response = if file == "-" {
            request.send(io::stdin().lock())
        } else {
            let source = File::open(file).with_context(|| format!("cannot open {file}"))?;
            let size = source.metadata()?.len();
            let bar = progress(size);
            let response =
                request.set("Content-Length", &size.to_string()).send(bar.wrap_read(source));
            bar.finish_and_clear();
            response
        };
        print_json(answer(response)?)
    }

    pub fn get(&self, target: &str, file: Option<&str>) -> anyhow::Result<()> {
        let response = answer(self.agent.get(&self.key_url(target)?).call())?;
        let size = response.header("Content-Length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut reader = response.into_reader();
        match file {
            None | Some("-") => {
                io::copy(&mut reader, &mut io::stdout().lock())?;
            }
            Some(path) => {
                let bar = progress(size);
                let mut out =
                    File::create(path).with_context(|| format!("cannot create {path}"))?;
                let copied = io::copy(&mut bar.wrap_read(reader), &mut out)?;
                bar.finish_and_clear();
                if copied != size {
                    bail!("transfer ended after {copied} of {size} bytes");
                }
                out.sync_all()?;
            }
        }
        Ok(())
    }

    pub fn rm(&self, target: &str) -> anyhow::Result<()> {
        answer(self.agent.delete(&self.key_url(target)?).call())?;
        Ok(())
    }

    pub fn stat(&self, target: &str) -> anyhow::Result<()> {
        print_json(answer(self.agent.get(&format!("{}?stat", self.key_url(target)?)).call())?)
    }

    pub fn ls(&self, domain: &str, prefix: &str) -> anyhow::Result<()> {
        let mut after: Option<String> = None;
        let mut out = io::stdout().lock();
        loop {
            let mut request =
                self.agent.get(&format!("{}/v1/{domain}", self.base)).query("prefix", prefix);
            if let Some(after) = &after {
                request = request.query("after", after);
            }
            let page: serde_json::Value = answer(request.call())?.into_json()?;
            for item in page["keys"].as_array().into_iter().flatten() {
                writeln!(out, "{}\t{}", item["size"], item["key"].as_str().unwrap_or_default())?;
            }
            match page["next_after"].as_str() {
                Some(next) => after = Some(next.to_string()),
                None => return Ok(()),
            }
        }
    }

    /// The node's status as JSON with `json`, else a table of the members.
    pub fn status(&self, json: bool) -> anyhow::Result<()> {
        let status = answer(self.agent.get(&format!("{}/v1/status", self.base)).call())?;
        if json {
            return print_json(status);
        }
        let status: serde_json::Value = status.into_json().context("status is not JSON")?;
        let cluster: serde_json::Value =
            answer(self.agent.get(&format!("{}/v1/cluster", self.base)).call())?
                .into_json()
                .context("cluster is not JSON")?;
        print!("{}", render_status(&status, &cluster));
        Ok(())
    }

    pub fn admin_get(&self, path: &str) -> anyhow::Result<()> {
        print_json(answer(self.agent.get(&format!("{}/v1/admin/{path}", self.base)).call())?)
    }

    pub fn admin_post(&self, path: &str, body: serde_json::Value) -> anyhow::Result<()> {
        let url = format!("{}/v1/admin/{path}", self.base);
        print_json(answer(self.agent.post(&url).send_json(body))?)
    }

    pub fn admin_delete(&self, path: &str) -> anyhow::Result<()> {
        answer(self.agent.delete(&format!("{}/v1/admin/{path}", self.base)).call())?;
        Ok(())
    }
}

/// `cairn status`: who leads, then one line per member.
fn render_status(status: &serde_json::Value, cluster: &serde_json::Value) -> String {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    let me = text(&status["node_id"]);
    let leader = text(&cluster["leader"]);
    let mut out =
        format!("node {me}, leader {leader}, term {}\n\n", cluster["term"].as_u64().unwrap_or(0));
    out += &format!(
        "{:<16}  {:<8}  {:<6}  {:<21}  {:<8}  {:>9}  {:>9}  {:>5}\n",
        "ID", "STATE", "ROLE", "HTTP", "ZONE", "DISK USED", "DISK SIZE", "USE%"
    );
    for member in cluster["members"].as_array().into_iter().flatten() {
        let id = text(&member["id"]);
        let role = match (member["voter"].as_bool(), id == leader) {
            (_, true) => "leader",
            (Some(true), _) => "voter",
            _ => "learner",
        };
        let total = member["disk_total_bytes"].as_u64();
        let free = member["disk_free_bytes"].as_u64();
        let (used, size, percent) = match (total, free) {
            (Some(total), Some(free)) if total > 0 => {
                let used = total.saturating_sub(free);
                (human_bytes(used), human_bytes(total), format!("{}%", used * 100 / total))
            }
            _ => ("-".into(), "-".into(), "-".into()),
        };
        let marker = if id == me { "*" } else { "" };
        out += &format!(
            "{:<16}  {:<8}  {:<6}  {:<21}  {:<8}  {:>9}  {:>9}  {:>5}{marker}\n",
            id,
            text(&member["state"]),
            role,
            text(&member["http"]),
            member["zone"].as_str().filter(|z| !z.is_empty()).unwrap_or("-"),
            used,
            size,
            percent
        );
    }
    out
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Turns an HTTP error status into an error carrying the server's message.
fn answer(result: Result<ureq::Response, ureq::Error>) -> anyhow::Result<ureq::Response> {
    match result {
        Ok(response) => Ok(response),
        Err(ureq::Error::Status(code, response)) => {
            let body = response.into_string().unwrap_or_default();
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or(body);
            bail!("server answered {code}: {message}")
        }
        Err(error) => Err(error).context("request failed"),
    }
}

fn print_json(response: ureq::Response) -> anyhow::Result<()> {
    let mut body = String::new();
    response.into_reader().take(16 << 20).read_to_string(&mut body)?;
    let value: serde_json::Value = serde_json::from_str(&body).context("answer is not JSON")?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

fn progress(size: u64) -> ProgressBar {
    if size < PROGRESS_MIN_BYTES || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    ProgressBar::new(size).with_style(
        ProgressStyle::with_template("{bytes}/{total_bytes} {wide_bar} {bytes_per_sec} {eta}")
            .expect("static template is valid"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        let status = serde_json::json!({ "node_id": "00000000000000aa" });
        let cluster = serde_json::json!({
            "leader": "00000000000000aa", "term": 3,
            "members": [
                { "id": "00000000000000aa", "state": "alive", "voter": true, "http": "127.0.0.1:7500",
                  "zone": "", "disk_total_bytes": 4096u64 << 20, "disk_free_bytes": 1024u64 << 20 },
                { "id": "00000000000000bb", "state": "down", "voter": false, "http": "10.0.0.2:7500",
                  "zone": "b", "disk_total_bytes": null, "disk_free_bytes": null }
            ]
        });
        let table = render_status(&status, &cluster);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "node 00000000000000aa, leader 00000000000000aa, term 3");
        assert!(
            lines[3].contains("leader")
                && lines[3].contains("3.0 GiB")
                && lines[3].ends_with("75%*")
        );
        assert!(
            lines[4].contains("down") && lines[4].contains("learner") && lines[4].contains(" b ")
        );
        assert_eq!(human_bytes(512), "512 B");
    }
}
