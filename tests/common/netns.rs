//! Test hosts in network namespaces (issue 14): a bridge in the test's own
//! namespace, one namespace per host joined to it by a veth pair, addresses
//! in a private /24 the test owns, and links cut with nft drop rules (a
//! silent partition: packets vanish, nothing is refused). Everything made
//! here is removed on drop, also when the test fails. Needs root.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::Host;

/// Private addresses: `10.231.N.0/24`, one `N` per network alive at once.
const SUBNET_PREFIX: &str = "10.231";

pub struct Net {
    /// Short and unique per network: names of the bridge and namespaces.
    tag: String,
    subnet: u32,
    hosts: usize,
}

/// Runs `ip`/`nft` with `args`; panics with what it said when it fails.
fn run(program: &str, args: &[&str]) {
    let output = Command::new(program).args(args).output().expect("run ip or nft");
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Net {
    /// `hosts` namespaces on one bridge; the test's namespace reaches them all.
    pub fn new(hosts: usize) -> Net {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("c{}n{n}", std::process::id() % 100_000);
        let subnet = (std::process::id() * 7 + n) % 250 + 1;
        let net = Net { tag, subnet, hosts: 0 };
        let bridge = net.bridge();
        run("ip", &["link", "add", &bridge, "type", "bridge"]);
        let mut net = net;
        run("ip", &["addr", "add", &format!("{SUBNET_PREFIX}.{subnet}.1/24"), "dev", &bridge]);
        run("ip", &["link", "set", &bridge, "up"]);
        for host in 0..hosts {
            let (netns, veth) = (net.netns(host), format!("{}h{host}", net.tag));
            run("ip", &["netns", "add", &netns]);
            net.hosts = host + 1;
            run(
                "ip",
                &["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns],
            );
            run("ip", &["link", "set", &veth, "master", &bridge, "up"]);
            let address = format!("{}/24", net.address(host));
            run("ip", &["-n", &netns, "addr", "add", &address, "dev", "eth0"]);
            run("ip", &["-n", &netns, "link", "set", "eth0", "up"]);
            run("ip", &["-n", &netns, "link", "set", "lo", "up"]);
        }
        net
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    fn netns(&self, host: usize) -> String {
        format!("cairn-{}-{host}", self.tag)
    }

    pub fn address(&self, host: usize) -> String {
        format!("{SUBNET_PREFIX}.{}.{}", self.subnet, host + 2)
    }

    /// Every host, for `Cluster::start_on`.
    pub fn hosts(&self) -> Vec<Host> {
        (0..self.hosts)
            .map(|host| Host { netns: Some(self.netns(host)), address: self.address(host) })
            .collect()
    }

    /// Cuts `host` off from each of `others`, both ways, silently; the
    /// test's own namespace still reaches it.
    pub fn cut(&self, host: usize, others: &[usize]) {
        for (at, away) in others.iter().flat_map(|other| [(host, *other), (*other, host)]) {
            let netns = self.netns(at);
            let nft = |rule: &str| {
                let script = format!("netns exec {netns} nft {rule}");
                let args: Vec<&str> = script.split(' ').collect();
                run("ip", &args);
            };
            nft("add table inet cut");
            nft("add chain inet cut in { type filter hook input priority 0 ; }");
            nft("add chain inet cut out { type filter hook output priority 0 ; }");
            nft(&format!("add rule inet cut in ip saddr {} drop", self.address(away)));
            nft(&format!("add rule inet cut out ip daddr {} drop", self.address(away)));
        }
    }

    /// Removes every cut.
    pub fn heal(&self) {
        for host in 0..self.hosts {
            let netns = self.netns(host);
            let _ = Command::new("ip")
                .args(["netns", "exec", &netns, "nft", "flush", "ruleset"])
                .output();
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for host in 0..self.hosts {
            let _ = Command::new("ip").args(["netns", "delete", &self.netns(host)]).output();
        }
        let _ = Command::new("ip").args(["link", "delete", &self.bridge()]).output();
    }
}
