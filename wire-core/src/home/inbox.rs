//! The inbox: one append-only JSONL file per peer (`inbox/<did>.jsonl`, the harness
//! contract in docs/PROTOCOL.md) and its id index (`inbox/<did>.ids`, a cache). A peer's
//! file that would pass the home's inbox cap is rotated first: it becomes
//! `inbox/<did>.jsonl.1` (replacing the one before), so what one peer can make us keep is
//! bounded at about twice the cap.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Home, HomeError, io};
use crate::proto::did::Did;
use crate::proto::event::{Event, EventId};
use crate::proto::signed::Signed;
use crate::proto::time::UnixMillis;

/// One inbox line: a verified event with its signed bytes (the harness contract). The
/// line carries the event's own fields (its `v` versions the line), plus `received_at`
/// and `signed`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboxLine {
    /// The event, as verified.
    #[serde(flatten)]
    pub event: Event,
    /// When we stored it.
    pub received_at: UnixMillis,
    /// The exact signed document, so the line can be re-verified.
    pub signed: Signed,
}

impl Home {
    pub(super) fn inbox_path(&self, peer: &Did) -> PathBuf {
        let name = peer.as_str().trim_start_matches("did:key:");
        self.path("inbox").join(format!("{name}.jsonl"))
    }

    fn index_path(&self, peer: &Did) -> PathBuf {
        self.inbox_path(peer).with_extension("ids")
    }

    /// The previous generation of a peer's inbox.
    pub(super) fn rotated_path(&self, peer: &Did) -> PathBuf {
        self.inbox_path(peer).with_extension("jsonl.1")
    }

    /// Ids of the last `n` lines of the previous generation (all of them for `usize::MAX`).
    fn rotated_ids(&self, peer: &Did, n: usize) -> Result<Vec<EventId>, HomeError> {
        #[derive(Deserialize)]
        struct IdOnly {
            id: EventId,
        }
        let path = self.rotated_path(peer);
        if n == 0 || !path.exists() {
            return Ok(Vec::new());
        }
        let lines = if n == usize::MAX {
            fs::read_to_string(&path).map_err(io(&path))?.lines().map(str::to_owned).collect()
        } else {
            read_tail(&path, n, 64 * 1024).map_err(io(&path))?
        };
        Ok(lines.iter().filter_map(|l| serde_json::from_str::<IdOnly>(l).ok()).map(|r| r.id).collect())
    }

    /// Ids already in a peer's inbox: the whole history. Hold the lock. Used when the relay's
    /// store changed under us (it may replay anything); an ordinary pull checks only the
    /// [`Home::recent_inbox_ids`] window.
    pub fn inbox_ids(&self, peer: &Did) -> Result<std::collections::HashSet<EventId>, HomeError> {
        self.index_catch_up(peer)?;
        let text = fs::read_to_string(self.index_path(peer)).unwrap_or_default();
        let mut ids: std::collections::HashSet<EventId> = text.lines().filter_map(parse_record).map(|r| r.id).collect();
        ids.extend(self.rotated_ids(peer, usize::MAX)?);
        Ok(ids)
    }

    /// The ids of the last `window` lines of a peer's inbox, read from the end of its id
    /// index: the cost follows `window` and what arrived since the last call, never the
    /// length of the history. Hold the lock.
    pub fn recent_inbox_ids(&self, peer: &Did, window: usize) -> Result<std::collections::HashSet<EventId>, HomeError> {
        let count = self.index_catch_up(peer)? as usize;
        let tail = read_tail(&self.index_path(peer), window, 64 * window as u64).map_err(io(&self.index_path(peer)))?;
        let mut ids: std::collections::HashSet<EventId> =
            tail.iter().filter_map(|l| parse_record(l)).map(|r| r.id).collect();
        // Just after a rotation the window reaches into the previous generation.
        ids.extend(self.rotated_ids(peer, window.saturating_sub(count))?);
        Ok(ids)
    }

    /// Brings `inbox/<did>.ids` up to date with the inbox and returns how many lines the
    /// inbox holds. The index is a cache beside the inbox, one record per inbox line:
    /// `<id> <inbox length after the line> <line number>`. Only its last record is read to
    /// know how far it covers; the inbox is read from there on. A last record that does not
    /// match the inbox (damaged, torn, or an inbox rewritten shorter) rebuilds the index.
    fn index_catch_up(&self, peer: &Did) -> Result<u64, HomeError> {
        #[derive(Deserialize)]
        struct IdOnly {
            id: EventId,
        }
        let inbox = self.inbox_path(peer);
        let len = match fs::metadata(&inbox) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io(&inbox)(e)),
        };
        let index = self.index_path(peer);
        let index_len = fs::metadata(&index).map_or(0, |m| m.len());
        let torn = index_len > 0 && last_byte(&index, index_len).map_or(true, |b| b != b'\n');
        let last = read_tail(&index, 1, 256).ok().and_then(|t| t.last().and_then(|l| parse_record(l)));
        let last = last.filter(|_| !torn);
        let (covered, mut count, rebuild) = match last {
            Some(r) if r.end <= len => (r.end, r.line, false),
            _ => (0, 0, true),
        };
        if covered == len {
            return Ok(count);
        }
        let mut tail = Vec::new();
        File::open(&inbox)
            .and_then(|mut f| {
                std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(covered))?;
                std::io::Read::read_to_end(&mut f, &mut tail)
            })
            .map_err(io(&inbox))?;
        let mut records = String::new();
        let mut offset = covered;
        // Complete lines only: a torn last line (a crash mid-append) is not indexed.
        let complete = tail.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for line in tail[..complete].split_inclusive(|b| *b == b'\n') {
            offset += line.len() as u64;
            let text = line.strip_suffix(b"\n").unwrap_or(line);
            if text.is_empty() {
                continue;
            }
            let parsed: IdOnly = serde_json::from_slice(text).map_err(|e| HomeError::Corrupt {
                path: inbox.clone(),
                detail: format!("the line ending at byte {offset}: {e}"),
            })?;
            count += 1;
            records.push_str(&format!("{} {offset} {count}\n", parsed.id));
        }
        // The index is a cache: failing to write it costs speed, never correctness.
        let mut options = OpenOptions::new();
        options.create(true).mode(0o600);
        if rebuild {
            options.write(true).truncate(true);
        } else {
            options.append(true);
        }
        if let Ok(mut f) = options.open(&index) {
            let _ = f.write_all(records.as_bytes());
        }
        Ok(count)
    }

    fn seen_path(&self, peer: &Did) -> PathBuf {
        self.inbox_path(peer).with_extension("seen")
    }

    /// Ids of protocol events (close, card updates, control messages, pairing repeats)
    /// already applied from a peer: `inbox/<did>.seen`, one id per line, so a replayed one
    /// is dropped like a repeated inbox line. Protocol events are rare; the file is small.
    pub fn protocol_ids(&self, peer: &Did) -> Result<std::collections::HashSet<EventId>, HomeError> {
        match fs::read_to_string(self.seen_path(peer)) {
            Ok(text) => Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
            Err(e) => Err(io(&self.seen_path(peer))(e)),
        }
    }

    /// Records applied protocol event ids (fsynced). Hold the lock.
    pub fn remember_protocol_ids(&self, peer: &Did, ids: &[EventId]) -> Result<(), HomeError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.create()?;
        let path = self.seen_path(peer);
        let mut file = OpenOptions::new().create(true).append(true).mode(0o600).open(&path).map_err(io(&path))?;
        let text: String = ids.iter().map(|id| format!("{id}\n")).collect();
        file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(io(&path))
    }

    /// Appends lines to a peer's inbox and fsyncs. Hold the lock.
    pub fn append_inbox(&self, peer: &Did, lines: &[InboxLine]) -> Result<(), HomeError> {
        self.append_lines(&self.inbox_path(peer), &self.rotated_path(peer), &self.index_path(peer), lines)
    }

    /// A room's inbox (`inbox/room-<key>.jsonl`, the same line format as a peer's).
    fn room_inbox_path(&self, room: &Did) -> PathBuf {
        let name = room.as_str().trim_start_matches("did:key:");
        self.path("inbox").join(format!("room-{name}.jsonl"))
    }

    /// Appends lines to a room's inbox and fsyncs. Hold the lock.
    pub fn append_room_inbox(&self, room: &Did, lines: &[InboxLine]) -> Result<(), HomeError> {
        let path = self.room_inbox_path(room);
        self.append_lines(&path, &path.with_extension("jsonl.1"), &path.with_extension("ids"), lines)
    }

    /// The last `limit` lines of a room's inbox, oldest first.
    pub fn read_room_tail(&self, room: &Did, limit: usize) -> Result<Vec<InboxLine>, HomeError> {
        read_tail_at(&self.room_inbox_path(room), limit)
    }

    /// Appends to an inbox file, rotating it at the cap (`rotated`; `index` is its id
    /// cache, dropped with it).
    fn append_lines(&self, path: &Path, rotated: &Path, index: &Path, lines: &[InboxLine]) -> Result<(), HomeError> {
        if lines.is_empty() {
            return Ok(());
        }
        self.create()?;
        let path = path.to_owned();
        let mut file = OpenOptions::new().create(true).append(true).mode(0o600).open(&path).map_err(io(&path))?;
        // A torn last line (a crash mid-append; its envelope was never acked and comes
        // again) is cut off first, so it cannot run into the next line.
        let len = file.metadata().map_err(io(&path))?.len();
        if len > 0 && last_byte(&path, len).map_err(io(&path))? != b'\n' {
            let bytes = fs::read(&path).map_err(io(&path))?;
            let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            file.set_len(keep as u64).map_err(io(&path))?;
        }
        let mut buf = Vec::new();
        for line in lines {
            serde_json::to_writer(&mut buf, line).expect("inbox lines serialize");
            buf.push(b'\n');
        }
        let len = file.metadata().map_err(io(&path))?.len();
        if len > 0 && len + buf.len() as u64 > self.inbox_cap {
            // A crash after the rename leaves an empty generation: the envelopes were not
            // acked, come again, and the dedupe window still sees the rotated lines.
            drop(file);
            fs::rename(&path, rotated).map_err(io(&path))?;
            let _ = fs::remove_file(index);
            file = OpenOptions::new().create(true).append(true).mode(0o600).open(&path).map_err(io(&path))?;
        }
        file.write_all(&buf).and_then(|()| file.sync_all()).map_err(io(&path))
    }

    /// The last `limit` lines of a peer's inbox, oldest first, reading the file from its
    /// end: the cost follows `limit`, not the length of the history.
    pub fn read_inbox_tail_of(&self, peer: &Did, limit: usize) -> Result<Vec<InboxLine>, HomeError> {
        read_tail_at(&self.inbox_path(peer), limit)
    }

    /// The last `limit` lines of every inbox, ordered by the time we stored them.
    pub fn read_inbox_tail(&self, limit: usize) -> Result<Vec<InboxLine>, HomeError> {
        let mut all = Vec::new();
        for did in self.inbox_peers()? {
            all.extend(self.read_inbox_tail_of(&did, limit)?);
        }
        all.sort_by_key(|l| (l.received_at, l.event.created_at));
        let skip = all.len().saturating_sub(limit);
        Ok(all.split_off(skip))
    }

    /// The peers that have an inbox file.
    pub(super) fn inbox_peers(&self) -> Result<Vec<Did>, HomeError> {
        Ok(self
            .list_dir("inbox")?
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl")) // not the `.ids` indexes
            .filter_map(|p| Did::parse(&format!("did:key:{}", p.file_stem()?.to_str()?)).ok())
            .collect())
    }

    /// A peer's inbox, oldest first. A torn last line (a crash mid-append) is skipped.
    pub fn read_inbox_of(&self, peer: &Did) -> Result<Vec<InboxLine>, HomeError> {
        let path = self.inbox_path(peer);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&path)(e)),
        };
        let lines: Vec<String> = BufReader::new(file).lines().collect::<Result<_, _>>().map_err(io(&path))?;
        let mut out = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            match serde_json::from_str::<InboxLine>(line) {
                Ok(parsed) => out.push(parsed),
                // Only a torn last line (a crash mid-append) is tolerated; it is re-fetched.
                Err(_) if i + 1 == lines.len() => {}
                Err(e) => return Err(HomeError::Corrupt { path, detail: format!("line {}: {e}", i + 1) }),
            }
        }
        Ok(out)
    }

    /// Every inbox line, ordered by the time we stored it.
    pub fn read_inbox(&self) -> Result<Vec<InboxLine>, HomeError> {
        let mut all = Vec::new();
        for did in self.inbox_peers()? {
            all.extend(self.read_inbox_of(&did)?);
        }
        all.sort_by_key(|l| (l.received_at, l.event.created_at));
        Ok(all)
    }

    /// How many events the inbox holds, from the last record of each id index (`wire
    /// status`): constant time per peer once the indexes are current.
    pub fn inbox_len(&self) -> Result<usize, HomeError> {
        let mut total = 0;
        for did in self.inbox_peers()? {
            total += self.index_catch_up(&did)? as usize;
        }
        Ok(total)
    }
}

/// The last byte of a file of length `len` (> 0).
fn last_byte(path: &Path, len: u64) -> std::io::Result<u8> {
    use std::io::{Read, Seek};
    let mut f = File::open(path)?;
    f.seek(std::io::SeekFrom::Start(len - 1))?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b)?;
    Ok(b[0])
}

/// One record of an id index.
struct Record {
    id: EventId,
    end: u64,
    line: u64,
}

/// A record, if `text` is a whole one (`<id> <end> <line>`).
fn parse_record(text: &str) -> Option<Record> {
    let mut parts = text.split(' ');
    let record =
        Record { id: parts.next()?.parse().ok()?, end: parts.next()?.parse().ok()?, line: parts.next()?.parse().ok()? };
    parts.next().is_none().then_some(record)
}

/// The last `n` complete lines of a file (those that end in a newline), reading backwards
/// in chunks of `chunk` bytes or more. A missing file has none.
fn read_tail(path: &Path, n: usize, chunk: u64) -> std::io::Result<Vec<String>> {
    use std::io::{Read, Seek};
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let chunk = chunk.max(256);
    let (mut start, mut buf) = (len, Vec::new());
    while start > 0 && buf.iter().filter(|b| **b == b'\n').count() <= n {
        let step = chunk.min(start);
        start -= step;
        let mut block = vec![0; step as usize];
        file.seek(std::io::SeekFrom::Start(start))?;
        file.read_exact(&mut block)?;
        block.extend_from_slice(&buf);
        buf = block;
    }
    let end = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let begin = if start == 0 { 0 } else { buf.iter().position(|b| *b == b'\n').map_or(end, |i| i + 1) };
    let text = String::from_utf8_lossy(&buf[begin.min(end)..end]);
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    Ok(lines[lines.len().saturating_sub(n)..].to_vec())
}

/// The last `limit` lines of an inbox file, oldest first, reading the file from its end:
/// the cost follows `limit`, not the length of the history.
fn read_tail_at(path: &Path, limit: usize) -> Result<Vec<InboxLine>, HomeError> {
    use std::io::{Read, Seek};
    let path = path.to_owned();
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&path)(e)),
    };
    let len = file.metadata().map_err(io(&path))?.len();
    // Read backwards in chunks until the buffer holds `limit` complete lines (one more
    // newline than that, or the start of the file).
    let mut start = len;
    let (mut chunks, mut newlines) = (Vec::new(), 0usize);
    while start > 0 && newlines <= limit {
        let step = (64 * 1024).min(start);
        start -= step;
        let mut chunk = vec![0; step as usize];
        file.seek(std::io::SeekFrom::Start(start)).and_then(|_| file.read_exact(&mut chunk)).map_err(io(&path))?;
        newlines += chunk.iter().filter(|b| **b == b'\n').count();
        chunks.push(chunk);
    }
    chunks.reverse();
    let buf = chunks.concat();
    // Only whole lines: drop a partial first line (unless the buffer starts the file)
    // and a torn last one.
    let end = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let begin = if start == 0 { 0 } else { buf.iter().position(|b| *b == b'\n').map_or(end, |i| i + 1) };
    let lines: Vec<&[u8]> = buf[begin.min(end)..end].split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    let skip = lines.len().saturating_sub(limit);
    lines[skip..]
        .iter()
        .map(|l| {
            serde_json::from_slice::<InboxLine>(l)
                .map_err(|e| HomeError::Corrupt { path: path.clone(), detail: format!("a line near the end: {e}") })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::identity::Identity;
    use crate::proto::rng::SeededRng;

    fn line(me: &Identity, to: &Did, n: u64, rng: &mut SeededRng) -> InboxLine {
        let event =
            Event::new(me, to.clone(), crate::proto::event::Kind::Message, format!("m{n}").into(), UnixMillis(n), rng);
        let signed = event.clone().sign(me).unwrap();
        InboxLine { event, received_at: UnixMillis(n), signed: signed.signed().clone() }
    }

    #[test]
    fn the_id_index_follows_the_inbox_through_crashes_and_rewrites() {
        let root = std::env::temp_dir().join(format!("wire-home-index-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let home = Home::at(&root);
        let mut rng = SeededRng::new(&crate::proto::secret::Secret32::from_bytes([7; 32]), b"home-index-test");
        let peer = Identity::generate(&mut rng);
        let me = Identity::generate(&mut rng);
        let first: Vec<InboxLine> = (0..5).map(|n| line(&peer, me.did(), n, &mut rng)).collect();
        home.append_inbox(peer.did(), &first).unwrap();
        let want: std::collections::HashSet<EventId> = first.iter().map(|l| l.event.id).collect();
        assert_eq!(home.inbox_ids(peer.did()).unwrap(), want);
        assert!(home.index_path(peer.did()).exists());

        // Appended since: the index catches up from the tail.
        let more = line(&peer, me.did(), 9, &mut rng);
        home.append_inbox(peer.did(), std::slice::from_ref(&more)).unwrap();
        let mut want = want;
        want.insert(more.event.id);
        assert_eq!(home.inbox_ids(peer.did()).unwrap(), want);

        // A damaged index is rebuilt; a torn inbox tail is neither indexed nor kept.
        fs::write(home.index_path(peer.did()), "garbage 99999999\n").unwrap();
        assert_eq!(home.inbox_ids(peer.did()).unwrap(), want);
        let inbox = home.inbox_path(peer.did());
        let mut f = OpenOptions::new().append(true).open(&inbox).unwrap();
        f.write_all(b"{\"v\":1,\"id\":\"torn").unwrap();
        assert_eq!(home.inbox_ids(peer.did()).unwrap(), want);
        let last = line(&peer, me.did(), 10, &mut rng);
        home.append_inbox(peer.did(), std::slice::from_ref(&last)).unwrap();
        want.insert(last.event.id);
        assert_eq!(home.inbox_ids(peer.did()).unwrap(), want);
        assert_eq!(home.read_inbox_of(peer.did()).unwrap().len(), 7, "the torn line was cut, not merged");
        assert_eq!(home.inbox_len().unwrap(), 7);
        let recent = home.recent_inbox_ids(peer.did(), 2).unwrap();
        assert_eq!(recent, [more.event.id, last.event.id].into_iter().collect(), "the window is the newest lines");
        // A torn index record, or one of the older two-field format, rebuilds the index.
        let mut f = OpenOptions::new().append(true).open(home.index_path(peer.did())).unwrap();
        f.write_all(b"abc 12").unwrap();
        assert_eq!(home.inbox_ids(peer.did()).unwrap(), want);
        fs::write(home.index_path(peer.did()), format!("{} 10\n", last.event.id)).unwrap();
        assert_eq!(home.inbox_len().unwrap(), 7);
        assert_eq!(home.inbox_ids(peer.did()).unwrap(), want);
        assert_eq!(home.read_inbox().unwrap().len(), 7, "the index is not read as an inbox");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_peer_inbox_past_the_cap_rotates_and_keeps_two_generations() {
        let root = std::env::temp_dir().join(format!("wire-home-rotate-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let home = Home::at(&root).with_inbox_cap(8 * 1024);
        let mut rng = SeededRng::new(&crate::proto::secret::Secret32::from_bytes([5; 32]), b"home-rotate-test");
        let (peer, me) = (Identity::generate(&mut rng), Identity::generate(&mut rng));
        let mut ids = Vec::new();
        for n in 0..200u64 {
            let l = line(&peer, me.did(), n, &mut rng);
            ids.push(l.event.id);
            home.append_inbox(peer.did(), &[l]).unwrap();
            let current = fs::metadata(home.inbox_path(peer.did())).unwrap().len();
            assert!(current <= 8 * 1024, "line {n}: the current file is {current} bytes");
            let rotated = fs::metadata(home.rotated_path(peer.did())).map_or(0, |m| m.len());
            assert!(rotated <= 8 * 1024, "line {n}: the previous generation is {rotated} bytes");
            // Right after a rotation the dedupe window still holds the newest lines.
            let recent = home.recent_inbox_ids(peer.did(), 8).unwrap();
            let want: std::collections::HashSet<EventId> = ids.iter().rev().take(8).copied().collect();
            assert_eq!(recent, want, "line {n}");
        }
        assert!(home.rotated_path(peer.did()).exists(), "200 lines of ~700 bytes rotated");
        let kept = home.read_inbox_of(peer.did()).unwrap().len();
        let all_ids = home.inbox_ids(peer.did()).unwrap();
        assert!(all_ids.contains(ids.last().unwrap()) && !all_ids.contains(&ids[0]), "the oldest generation is gone");
        assert!(all_ids.len() > kept, "the whole-history check reads the previous generation too");
        assert_eq!(home.inbox_len().unwrap(), kept, "counts and reads are of the current generation");
        assert_eq!(home.read_inbox().unwrap().len(), kept, "the rotated file is not read as another peer");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn tails_read_from_the_end_match_the_whole_inbox() {
        let root = std::env::temp_dir().join(format!("wire-home-tail-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let home = Home::at(&root);
        let mut rng = SeededRng::new(&crate::proto::secret::Secret32::from_bytes([9; 32]), b"home-tail-test");
        let (p, q, me) = (Identity::generate(&mut rng), Identity::generate(&mut rng), Identity::generate(&mut rng));
        // Long bodies, so the tail spans several 64 KiB chunks.
        for n in 0..300u64 {
            let from = if n % 3 == 0 { &q } else { &p };
            let mut l = line(from, me.did(), n, &mut rng);
            l.event.body = "x".repeat(700).into();
            home.append_inbox(from.did(), &[l]).unwrap();
        }
        let whole = home.read_inbox_of(p.did()).unwrap();
        for limit in [0, 1, 7, 150, 199, 200, 500] {
            let tail = home.read_inbox_tail_of(p.did(), limit).unwrap();
            let want = &whole[whole.len().saturating_sub(limit)..];
            assert_eq!(
                tail.iter().map(|l| l.event.id).collect::<Vec<_>>(),
                want.iter().map(|l| l.event.id).collect::<Vec<_>>(),
                "limit {limit}"
            );
        }
        let all = home.read_inbox().unwrap();
        let merged = home.read_inbox_tail(25).unwrap();
        assert_eq!(
            merged.iter().map(|l| l.event.id).collect::<Vec<_>>(),
            all[all.len() - 25..].iter().map(|l| l.event.id).collect::<Vec<_>>()
        );
        assert_eq!(home.inbox_len().unwrap(), all.len());
        // A torn last line is not part of the tail, nor counted.
        let mut f = OpenOptions::new().append(true).open(home.inbox_path(p.did())).unwrap();
        f.write_all(b"{\"torn").unwrap();
        assert_eq!(
            home.read_inbox_tail_of(p.did(), 3).unwrap().last().unwrap().event.id,
            whole.last().unwrap().event.id
        );
        assert_eq!(home.inbox_len().unwrap(), all.len());
        fs::remove_dir_all(&root).unwrap();
    }
}
