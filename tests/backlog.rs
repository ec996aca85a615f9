//! A reconnect storm fits in the listen queue: 1,000 clients connect at once to a server that
//! accepts none of them yet, and every one is queued by the kernel, none dropped.
//!
//! With the 128 that std, mio and tokio listen with, the kernel drops the SYNs past the 129th
//! (`TcpExtListenOverflows` grows) and those clients wait a second for their retransmit. The
//! server here does not accept until all 1,000 are queued, so the outcome depends on the backlog
//! alone, not on how fast anything runs; nothing is timed.
//!
//! `TcpExtListenOverflows` counts for the whole machine, and other programs (other tests, other
//! builds' servers) may overflow their own queues meanwhile. The test's own evidence comes first:
//! `ss` must show the listener's backlog at 1,000 or more and its queue holding all 1,000
//! connections. The counter is read around each attempt, and an attempt during which it moved is
//! run once more: a failure needs the counter to move during both, which another program's
//! overflows in two separate windows of a fraction of a second would take.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use support::Need;

const CLIENTS: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections_at_once_overflow_nothing() {
    if !support::can_run("a_thousand_connections_at_once_overflow_nothing", &[Need::Ss]) {
        return;
    }
    raise_nofile(CLIENTS as u64 * 2 + 64);
    for attempt in 1..=2 {
        let grew = storm_once().await;
        if grew == 0 {
            return;
        }
        assert!(
            attempt == 1,
            "TcpExtListenOverflows grew by {grew} during the second attempt too: the listen queue overflowed"
        );
        eprintln!(
            "TcpExtListenOverflows grew by {grew} during the first attempt (it counts for the whole machine: \
             another program may have overflowed its own queue); trying once more"
        );
    }
}

/// One storm against a fresh server. Asserts what `ss` shows; returns how much the machine's
/// overflow counter grew meanwhile.
async fn storm_once() -> u64 {
    let server = duplex::Server::bind("127.0.0.1:0").await.unwrap(); // the default backlog
    let addr = server.local_addr().unwrap();
    let (queued, backlog) = ss_listen(addr);
    assert_eq!(queued, 0);
    assert!(backlog >= CLIENTS as u64, "`ss -ltn` shows a backlog of {backlog}, below {CLIENTS}");
    assert_eq!(server.backlog(), Some(backlog as u32), "Server::backlog() disagrees with ss");

    let before = listen_overflows();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        clients.spawn(tokio::net::TcpStream::connect(addr));
    }
    // Nobody accepts yet: wait until the kernel has queued all of them, or stop early if SYNs
    // are being dropped (then the clients would wait for their retransmits). The deadline only
    // turns a hang into a failure; it measures nothing.
    let hang_guard = Instant::now() + Duration::from_secs(120);
    loop {
        let (queued, _) = ss_listen(addr);
        if queued >= CLIENTS as u64 || listen_overflows() > before {
            break;
        }
        assert!(Instant::now() < hang_guard, "after 120 s only {queued} of {CLIENTS} connections are queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let grew = listen_overflows() - before;
    if grew == 0 {
        let (queued, _) = ss_listen(addr);
        assert_eq!(queued, CLIENTS as u64, "the listen queue holds {queued} connections, not all {CLIENTS}");
    }
    // Now accept them all: every client's connect completes, and the server sees every one.
    let server = std::sync::Arc::new(server);
    let acceptor = tokio::spawn({
        let server = server.clone();
        async move {
            let mut accepted = 0;
            while accepted < CLIENTS {
                drop(server.accept().await.unwrap());
                accepted += 1;
            }
        }
    });
    while let Some(r) = clients.join_next().await {
        // A client whose SYNs were all dropped fails here (after the kernel's retries).
        r.unwrap().expect("a client's connect failed");
    }
    acceptor.await.unwrap();
    grew
}

/// A listening socket's (queue, backlog) as `ss -ltn` shows them: for a listener, Recv-Q is the
/// number of connections waiting to be accepted and Send-Q the backlog.
fn ss_listen(addr: SocketAddr) -> (u64, u64) {
    let out = Command::new(support::program("ss").unwrap())
        .args(["-ltnH", &format!("sport = :{}", addr.port())])
        .output()
        .expect("run ss");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(&addr.to_string()))
        .unwrap_or_else(|| panic!("`ss -ltn` does not list {addr}: {text:?}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    // State Recv-Q Send-Q Local Peer
    (cols[1].parse().unwrap(), cols[2].parse().unwrap())
}

/// The machine's `TcpExtListenOverflows` (what `nstat -az TcpExtListenOverflows` prints), from
/// /proc/net/netstat: a header line of names and a line of values per group.
fn listen_overflows() -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").expect("read /proc/net/netstat");
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let (Some(names), Some(values)) = (pair.first(), pair.get(1)) else { continue };
        if !names.starts_with("TcpExt:") {
            continue;
        }
        let i = names.split_whitespace().position(|n| n == "ListenOverflows").expect("a ListenOverflows column");
        return values.split_whitespace().nth(i).unwrap().parse().unwrap();
    }
    panic!("no TcpExt line in /proc/net/netstat")
}

/// Raises the soft open-files limit to at least `want` (within the hard limit): the test holds
/// both ends of its connections.
fn raise_nofile(want: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
}
