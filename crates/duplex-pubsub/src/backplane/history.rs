//! History topics in Redis: a stream per topic, written by one Lua script per publish, read by
//! another; and the format of their messages on the topic's channel.
//!
//! **Publish** (`EVALSHA`, atomic, on the command connection): if the publish id's key exists,
//! return the position it holds and publish nothing; otherwise take the epoch from the topic's
//! meta hash (a fresh one, with the offset counter at 0, if it has none), `HINCRBY` the counter
//! (the new offset; at 1 the old stream is deleted: a new epoch starts empty), refresh the meta
//! TTL, `XADD` the publication with id `<offset>-0` (`MAXLEN ~ <size>`: trimmed approximately,
//! so at least `size` are kept), refresh the stream's TTL, `PUBLISH` it on the topic's channel
//! as `<offset>:<epoch>:<kind>:<payload>`, and remember the id for the id window.
//!
//! **Read** (`EVALSHA`, atomic): the epoch and the counter (making the epoch if the topic has
//! none, so that a subscriber's position always names a stream) and, when asked, `XRANGE` (or
//! `XREVRANGE`) after an offset — one answer, so the top and the publications agree.
//!
//! The scripts are loaded with `SCRIPT LOAD` whenever the command connection is made (a restarted
//! Redis has an empty script cache, and a restart always breaks the connection); a `NOSCRIPT`
//! answer anyway (`SCRIPT FLUSH`) loads them again and repeats the publishes it refused.

use std::sync::Arc;

use bytes::Bytes;
use redis::Value;

use crate::history::store::{Appended, Lifetimes, Page, Read, StoreError};
use crate::history::{fresh_epoch, Kind, Position, Publication};

use super::names::Names;

/// The publish script. KEYS: meta, stream, [publish id]. ARGV: channel, kind, payload, size,
/// stream TTL (ms), meta TTL (ms), a fresh epoch, id window (ms). Returns `{duplicate, "o:e"}`.
pub(crate) const PUBLISH: &str = r"
local meta, stream, idkey = KEYS[1], KEYS[2], KEYS[3]
if idkey then
  local seen = redis.call('GET', idkey)
  if seen then return {1, seen} end
end
local epoch = redis.call('HGET', meta, 'e')
if not epoch then
  epoch = ARGV[7]
  redis.call('HSET', meta, 'e', epoch, 's', 0)
end
local offset = redis.call('HINCRBY', meta, 's', 1)
redis.call('PEXPIRE', meta, ARGV[6])
if offset == 1 then redis.call('DEL', stream) end
redis.call('XADD', stream, 'MAXLEN', '~', ARGV[4], offset .. '-0', ARGV[2], ARGV[3])
redis.call('PEXPIRE', stream, ARGV[5])
local position = offset .. ':' .. epoch
redis.call('PUBLISH', ARGV[1], position .. ':' .. ARGV[2] .. ':' .. ARGV[3])
if idkey then redis.call('SET', idkey, position, 'PX', ARGV[8]) end
return {0, position}
";

/// The read script. KEYS: meta, stream. ARGV: since ('' for the position only), count, a fresh
/// epoch, meta TTL (ms), reverse ('1' or '0'). Returns `{epoch, top, entries}`.
pub(crate) const READ: &str = r"
local meta, stream = KEYS[1], KEYS[2]
local epoch = redis.call('HGET', meta, 'e')
local top = 0
if not epoch then
  epoch = ARGV[3]
  redis.call('HSET', meta, 'e', epoch, 's', 0)
else
  top = tonumber(redis.call('HGET', meta, 's') or '0')
end
redis.call('PEXPIRE', meta, ARGV[4])
local items = {}
if ARGV[1] ~= '' then
  if ARGV[5] == '1' then
    items = redis.call('XREVRANGE', stream, '+', '(' .. ARGV[1] .. '-0', 'COUNT', ARGV[2])
  else
    items = redis.call('XRANGE', stream, '(' .. ARGV[1] .. '-0', '+', 'COUNT', ARGV[2])
  end
end
return {epoch, top, items}
";

/// The two scripts, with their SHA1s.
#[derive(Clone, Debug)]
pub(crate) struct Scripts {
    pub(crate) publish: redis::Script,
    pub(crate) read: redis::Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts { publish: redis::Script::new(PUBLISH), read: redis::Script::new(READ) }
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The `EVALSHA` of one publish.
pub(crate) fn append_command(
    scripts: &Scripts,
    names: &Names,
    topic: &str,
    lifetimes: Lifetimes,
    publication: &Publication,
    id: Option<&str>,
) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(scripts.publish.get_hash()).arg(if id.is_some() { 3 } else { 2 });
    cmd.arg(names.meta(topic)).arg(names.stream(topic));
    if let Some(id) = id {
        cmd.arg(names.publish_id(topic, id));
    }
    cmd.arg(names.channel(topic))
        .arg(publication.kind().tag())
        .arg(publication.as_bytes())
        .arg(lifetimes.policy.size)
        .arg(millis(lifetimes.policy.ttl))
        .arg(millis(lifetimes.meta_ttl))
        .arg(&*fresh_epoch())
        .arg(millis(lifetimes.id_window));
    cmd
}

/// Reads `topic` with the read script.
pub(crate) async fn read(
    conn: &mut redis::aio::MultiplexedConnection,
    scripts: &Scripts,
    names: &Names,
    topic: &str,
    lifetimes: Lifetimes,
    read: Read,
) -> Result<Page, StoreError> {
    let since = read.since.map_or(String::new(), |s| s.to_string());
    let value: Value = scripts
        .read
        .key(names.meta(topic))
        .key(names.stream(topic))
        .arg(since)
        .arg(read.count.max(1))
        .arg(&*fresh_epoch())
        .arg(millis(lifetimes.meta_ttl))
        .arg(if read.reverse { "1" } else { "0" })
        .invoke_async(conn)
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    parse_page(value).ok_or_else(|| StoreError::Unavailable("an unexpected answer to the read script".into()))
}

fn text(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// `"<offset>:<epoch>"` as the publish script returns and the id keys hold it.
fn parse_position(b: &[u8]) -> Option<Position> {
    let s = std::str::from_utf8(b).ok()?;
    let (offset, epoch) = s.split_once(':')?;
    Some(Position::new(offset.parse().ok()?, epoch))
}

/// The publish script's answer.
pub(crate) fn parse_appended(value: &Value) -> Option<Appended> {
    let Value::Array(items) = value else { return None };
    let [Value::Int(duplicate), position] = items.as_slice() else { return None };
    Some(Appended { position: parse_position(text(position)?)?, duplicate: *duplicate == 1 })
}

/// The read script's answer.
fn parse_page(value: Value) -> Option<Page> {
    let Value::Array(items) = value else { return None };
    let [epoch, Value::Int(top), Value::Array(entries)] = items.as_slice() else { return None };
    let epoch: Arc<str> = std::str::from_utf8(text(epoch)?).ok()?.into();
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        // [id, [field, value]]
        let Value::Array(entry) = entry else { return None };
        let [id, Value::Array(fields)] = entry.as_slice() else { return None };
        let id = std::str::from_utf8(text(id)?).ok()?;
        let offset: u64 = id.split_once('-')?.0.parse().ok()?;
        let [field, data] = fields.as_slice() else { return None };
        let kind = Kind::from_tag(text(field)?)?;
        let publication = Publication::from_stored(kind, Bytes::copy_from_slice(text(data)?))?;
        out.push((offset, publication));
    }
    Some(Page { epoch, top: u64::try_from(*top).ok()?, entries: out })
}

/// A message on a history topic's channel: `<offset>:<epoch>:<kind>:<payload>`. `None` for
/// anything else (the other format starts with the byte 1, never a digit).
pub(crate) fn parse_message(payload: &[u8]) -> Option<(Position, Publication)> {
    if !payload.first()?.is_ascii_digit() {
        return None;
    }
    let mut parts = payload.splitn(4, |b| *b == b':');
    let offset: u64 = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let epoch = std::str::from_utf8(parts.next()?).ok()?;
    let kind = Kind::from_tag(parts.next()?)?;
    let data = parts.next()?;
    let publication = Publication::from_stored(kind, Bytes::copy_from_slice(data))?;
    Some((Position::new(offset, epoch), publication))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_messages() {
        let (p, publication) = parse_message(b"42:k3J9:d:{\"seq\":1}").unwrap();
        assert_eq!(p, Position::new(42, "k3J9"));
        assert_eq!((publication.kind(), publication.as_str()), (Kind::Json, Some("{\"seq\":1}")));
        // A payload with colons stays whole.
        let (_, publication) = parse_message(b"1:e:t:a:b:c").unwrap();
        assert_eq!(publication.as_str(), Some("a:b:c"));
        let (_, publication) = parse_message(b"1:e:b:\xff\x00").unwrap();
        assert_eq!(publication.as_bytes(), b"\xff\x00");
        for bad in [&b""[..], b"x:e:d:1", b"1:e:q:1", b"1:e", b"\x01rest", b"1:e:t:\xff"] {
            assert!(parse_message(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn script_answers() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let appended = parse_appended(&Value::Array(vec![Value::Int(1), bulk("7:abc")])).unwrap();
        assert_eq!(appended, Appended { position: Position::new(7, "abc"), duplicate: true });
        assert!(parse_appended(&Value::Int(3)).is_none());
        let entry = |o: &str, f: &str, d: &str| Value::Array(vec![bulk(o), Value::Array(vec![bulk(f), bulk(d)])]);
        let page = parse_page(Value::Array(vec![
            bulk("e1"),
            Value::Int(9),
            Value::Array(vec![entry("8-0", "d", "[1]"), entry("9-0", "t", "hi")]),
        ]))
        .unwrap();
        assert_eq!((&*page.epoch, page.top), ("e1", 9));
        assert_eq!(page.entries, vec![(8, Publication::json("[1]".into())), (9, Publication::message("hi".into()))]);
        assert!(parse_page(Value::Array(vec![bulk("e1"), Value::Int(9), Value::Array(vec![entry("x", "d", "1")])]))
            .is_none());
    }
}
