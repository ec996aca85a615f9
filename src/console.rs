//! The operator console of `duplex serve`: lines typed on the server's stdin go to the browsers.
//!
//! - a plain line is sent as a text message to every open connection;
//! - `@<id> <text>` sends to one connection;
//! - `/list` prints the open connections; `/close <id> [code] [reason]` closes one; `/help`.
//!
//! Answers go to stdout (they are the console's output, not logs). The end of stdin turns the
//! console off and nothing else: the server keeps serving until it is signalled.

use std::time::Duration;

use duplex::{CloseCode, CloseFrame, Connections};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const HELP: &str = "\
console commands:
  <text>                     send <text> to every open connection
  @<id> <text>               send <text> to connection <id> only
  /list                      list open connections: id, peer, path, age, messages in/out
  /close <id> [code] [why]   close connection <id> (code 1000 by default; 1000-1003, 1007-1014, 3000-4999)
  /help                      this list";

/// Reads stdin until it ends, running each line against `connections`.
pub async fn run(connections: Connections) {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                let answer = execute(&connections, &line);
                if !answer.is_empty() {
                    let mut out = tokio::io::stdout();
                    let _ = out.write_all(format!("{answer}\n").as_bytes()).await;
                    let _ = out.flush().await;
                }
            }
            Ok(None) => {
                tracing::debug!("stdin ended: the console is off; still serving");
                return;
            }
            Err(e) => {
                tracing::debug!("stdin unreadable ({e}): the console is off; still serving");
                return;
            }
        }
    }
}

/// Runs one console line; returns what to print (possibly nothing).
pub fn execute(connections: &Connections, line: &str) -> String {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return String::new();
    }
    if let Some(rest) = line.strip_prefix('@') {
        let (id, text) = rest.split_once(' ').unwrap_or((rest, ""));
        let Some(id) = parse_id(id) else {
            return format!("`@{id}` is not a connection id: write @<id> <text>, e.g. @1 hello (see /list)");
        };
        return match connections.send_to(id, text) {
            Ok(()) => format!("sent to #{id}"),
            Err(e) => format!("not sent: {e} (see /list)"),
        };
    }
    if let Some(cmd) = line.strip_prefix('/') {
        let mut words = cmd.split_whitespace();
        return match words.next().unwrap_or("") {
            "list" | "ls" => list(connections),
            "close" => {
                let Some(id) = words.next().and_then(parse_id) else {
                    return "usage: /close <id> [code] [reason], e.g. /close 1 4000 bye".into();
                };
                let code = match words.next().map(str::parse::<u16>) {
                    None => CloseCode::NORMAL,
                    Some(Ok(c)) if CloseCode(c).is_sendable() => CloseCode(c),
                    Some(Ok(c)) => {
                        return format!("close code {c} cannot be sent: use 1000-1003, 1007-1014 or 3000-4999");
                    }
                    Some(Err(_)) => return "the close code must be a number, e.g. /close 1 4000 bye".into(),
                };
                let reason: Vec<&str> = words.collect();
                let reason = reason.join(" ");
                if reason.len() > 123 {
                    return format!("the reason is {} bytes; a close reason holds at most 123", reason.len());
                }
                match connections.close(id, Some(CloseFrame::new(code, reason))) {
                    Ok(()) => format!("closing #{id} with {code}"),
                    Err(e) => format!("not closed: {e} (see /list)"),
                }
            }
            "help" | "?" => HELP.into(),
            other => format!("unknown command /{other}; /help lists the commands"),
        };
    }
    if connections.is_empty() {
        return "nobody is connected: the line was not sent".into();
    }
    let n = connections.broadcast(line);
    let total = connections.len();
    if n == total {
        format!("sent to {}", crate::apps::connections(n))
    } else {
        format!("sent to {n} of {total} connections (the others are closing or not reading)")
    }
}

fn parse_id(s: &str) -> Option<u64> {
    s.trim().trim_start_matches('#').parse().ok()
}

fn list(connections: &Connections) -> String {
    let list = connections.list();
    if list.is_empty() {
        return "no open connections".into();
    }
    let mut out = format!("{:<6} {:<24} {:<16} {:>8} {:>6} {:>6}", "id", "peer", "path", "age", "in", "out");
    for c in list {
        out.push_str(&format!(
            "\n{:<6} {:<24} {:<16} {:>8} {:>6} {:>6}",
            format!("#{}", c.id),
            c.peer,
            c.path,
            age(c.opened.elapsed()),
            c.messages_in,
            c.messages_out
        ));
    }
    out
}

fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_instead_of_failing() {
        let c = Connections::new();
        assert_eq!(execute(&c, "hello"), "nobody is connected: the line was not sent");
        assert!(execute(&c, "@x hi").contains("not a connection id"));
        assert!(execute(&c, "@7 hi").contains("no open connection has id 7"));
        assert!(execute(&c, "/close 1 1005").contains("cannot be sent"));
        assert!(execute(&c, "/close 1 abc").contains("must be a number"));
        assert!(execute(&c, "/close").starts_with("usage"));
        assert!(execute(&c, "/close 3 4000 bye").contains("no open connection has id 3"));
        assert!(execute(&c, "/frobnicate").contains("unknown command"));
        assert_eq!(execute(&c, "/list"), "no open connections");
        assert!(execute(&c, "/help").contains("/close <id>"));
        assert_eq!(execute(&c, "   "), "");
    }

    #[test]
    fn ages() {
        assert_eq!(age(Duration::from_secs(5)), "5s");
        assert_eq!(age(Duration::from_secs(125)), "2m05s");
        assert_eq!(age(Duration::from_secs(7300)), "2h01m");
    }
}
