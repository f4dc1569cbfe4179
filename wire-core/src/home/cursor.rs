//! Read cursors: what each consumer of the inbox has read (`cursors/<consumer>.json`).
//!
//! Two consumers read one inbox: the agent (through `wire mcp` and `wire wait`) and the
//! operator (through the CLI). Each has, per peer, a position in that peer's inbox file:
//! the file's inode and a byte offset after the last line read. A rotation renames the file
//! (its inode goes with it), so a cursor left in the previous generation reads the rest of
//! that one and then the new file; a cursor in neither (never read, or two rotations
//! behind) reads the current file from its start.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Home, HomeError, InboxLine, io};
use crate::proto::did::Did;

/// Who reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consumer {
    /// The agent: `wire mcp` tools and `wire wait`. Its reads send `read` receipts.
    Agent,
    /// The operator: the CLI (`wire tail --mark-read`). Its reads send none.
    Operator,
}

impl Consumer {
    fn file(self) -> &'static str {
        match self {
            Consumer::Agent => "agent",
            Consumer::Operator => "operator",
        }
    }
}

/// A place in a peer's inbox: after byte `offset` of the file with inode `inode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Position {
    /// The inbox file's inode (a rotation renames it, so the inode names a generation).
    pub inode: u64,
    /// Bytes read.
    pub offset: u64,
}

/// One consumer's cursors.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Cursors {
    v: u64,
    /// Peer DID -> position.
    peers: BTreeMap<String, Position>,
}

/// Unread lines and the positions that mark them read.
#[derive(Debug, Default)]
pub struct Unread {
    /// The lines, oldest first across peers.
    pub lines: Vec<(Did, InboxLine)>,
    /// Per peer, the position after the last line returned.
    pub marks: BTreeMap<Did, Position>,
}

/// Complete lines of `path` from `from`, each with the offset after it.
fn lines_from(path: &Path, from: u64) -> Result<Vec<(InboxLine, u64)>, HomeError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path)(e)),
    };
    let mut bytes = Vec::new();
    file.seek(std::io::SeekFrom::Start(from)).and_then(|_| file.read_to_end(&mut bytes)).map_err(io(path))?;
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut out = Vec::new();
    let mut end = from;
    for line in bytes[..complete].split_inclusive(|b| *b == b'\n') {
        end += line.len() as u64;
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        if text.is_empty() {
            continue;
        }
        let parsed = serde_json::from_slice::<InboxLine>(text).map_err(|e| HomeError::Corrupt {
            path: path.to_owned(),
            detail: format!("the line ending at byte {end}: {e}"),
        })?;
        out.push((parsed, end));
    }
    Ok(out)
}

fn inode(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.ino())
}

impl Home {
    fn cursors(&self, consumer: Consumer) -> Result<Cursors, HomeError> {
        let path = self.path("cursors").join(format!("{}.json", consumer.file()));
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| HomeError::Corrupt { path, detail: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Cursors { v: 1, ..Cursors::default() }),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// A peer's unread lines for `consumer`, each with the position after it.
    fn unread_of(&self, peer: &Did, at: Option<Position>) -> Result<Vec<(InboxLine, Position)>, HomeError> {
        let current = self.inbox_path(peer);
        let rotated = self.rotated_path(peer);
        let (Some(now), at) = (inode(&current), at.unwrap_or_default()) else { return Ok(Vec::new()) };
        let tagged = |lines: Vec<(InboxLine, u64)>, inode: u64| {
            lines.into_iter().map(move |(l, offset)| (l, Position { inode, offset }))
        };
        if at.inode == now {
            return Ok(tagged(lines_from(&current, at.offset)?, now).collect());
        }
        let mut out = Vec::new();
        if let Some(old) = inode(&rotated).filter(|i| *i == at.inode) {
            out.extend(tagged(lines_from(&rotated, at.offset)?, old));
        }
        out.extend(tagged(lines_from(&current, 0)?, now));
        Ok(out)
    }

    /// What `consumer` has not read, oldest first (at most `limit`; of one peer, or all).
    /// Nothing is marked: pass [`Unread::marks`] to [`Home::mark_read`] for that.
    pub fn unread(&self, consumer: Consumer, only: Option<&Did>, limit: usize) -> Result<Unread, HomeError> {
        let cursors = self.cursors(consumer)?;
        let peers = match only {
            Some(did) => vec![did.clone()],
            None => self.inbox_peers()?,
        };
        let mut queues: Vec<(Did, std::collections::VecDeque<(InboxLine, Position)>)> = Vec::new();
        for did in peers {
            let at = cursors.peers.get(did.as_str()).copied();
            let lines = self.unread_of(&did, at)?;
            if !lines.is_empty() {
                queues.push((did, lines.into()));
            }
        }
        // Merge by arrival, keeping each peer's own order.
        let mut out = Unread::default();
        while out.lines.len() < limit {
            let next = queues
                .iter_mut()
                .filter(|(_, q)| !q.is_empty())
                .min_by_key(|(_, q)| q.front().map(|(l, _)| (l.received_at, l.event.created_at)));
            let Some((did, queue)) = next else { break };
            let Some((line, position)) = queue.pop_front() else { break };
            out.marks.insert(did.clone(), position);
            out.lines.push((did.clone(), line));
        }
        Ok(out)
    }

    /// Moves `consumer`'s cursors to `marks` (never backwards within a generation). Hold
    /// the lock.
    pub fn mark_read(&self, consumer: Consumer, marks: &BTreeMap<Did, Position>) -> Result<(), HomeError> {
        if marks.is_empty() {
            return Ok(());
        }
        let mut cursors = self.cursors(consumer)?;
        for (did, position) in marks {
            let slot = cursors.peers.entry(did.as_str().to_owned()).or_default();
            if slot.inode != position.inode || slot.offset < position.offset {
                *slot = *position;
            }
        }
        self.save_keyed("cursors", consumer.file(), &cursors)
    }
}
