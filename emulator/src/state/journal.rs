//! Crash-safe persistence: a snapshot plus an append-only journal of committed transactions.
//!
//! Every transaction is one line, `CRC32C-HEX JSON\n`, written and `fdatasync`ed before the
//! caller is answered. On open the snapshot is loaded, the journal replayed (a torn last line,
//! left by a kill in the middle of a write, is dropped: it was never acknowledged), and a fresh
//! snapshot is written by write-to-temp, fsync, rename, fsync-directory, so any crash leaves
//! either the old or the new snapshot whole.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{Data, Record};

const SNAPSHOT: &str = "state.json";
const JOURNAL: &str = "journal.log";
const LOCK: &str = "lock";
/// The journal is folded into the snapshot once it grows past this size.
const COMPACT_AT_BYTES: u64 = 64 * 1024 * 1024;

/// The open journal of a data directory, holding that directory's lock.
#[derive(Debug)]
pub(crate) struct Journal {
    dir: PathBuf,
    file: File,
    len: u64,
    _lock: File,
}

impl Journal {
    /// Opens (or creates) a data directory and returns the state it holds.
    pub(crate) fn open(dir: &Path) -> io::Result<(Data, Journal)> {
        fs::create_dir_all(dir)?;
        let lock = File::create(dir.join(LOCK))?;
        if lock.try_lock().is_err() {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "data directory {} is in use by another emulator",
                    dir.display()
                ),
            ));
        }
        let mut data = match File::open(dir.join(SNAPSHOT)) {
            Ok(file) => serde_json::from_reader(BufReader::new(file)).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "snapshot {} is unreadable: {e}",
                        dir.join(SNAPSHOT).display()
                    ),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Data::default(),
            Err(e) => return Err(e),
        };
        let journal_path = dir.join(JOURNAL);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&journal_path)?;
        let replayed = replay(&mut file, &mut data)?;
        let mut journal = Journal {
            dir: dir.to_path_buf(),
            file,
            len: 0,
            _lock: lock,
        };
        if replayed > 0 {
            journal.compact(&data)?;
        } else {
            journal.len = journal.file.seek(SeekFrom::End(0))?;
        }
        Ok((data, journal))
    }

    /// Durably appends one transaction; returns only once it is on disk.
    pub(crate) fn append(&mut self, records: &[Record]) -> io::Result<()> {
        let json = serde_json::to_vec(records)?;
        let mut line = format!("{:08x} ", crc32c::crc32c(&json)).into_bytes();
        line.extend_from_slice(&json);
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()?;
        self.len += line.len() as u64;
        Ok(())
    }

    /// Whether the journal has grown enough to be folded into the snapshot.
    pub(crate) fn wants_compaction(&self) -> bool {
        self.len > COMPACT_AT_BYTES
    }

    /// Writes `data` as the new snapshot and empties the journal.
    pub(crate) fn compact(&mut self, data: &Data) -> io::Result<()> {
        let tmp = self.dir.join(format!("{SNAPSHOT}.tmp"));
        {
            let mut file = File::create(&tmp)?;
            serde_json::to_writer(&mut file, data)?;
            file.sync_all()?;
        }
        fs::rename(&tmp, self.dir.join(SNAPSHOT))?;
        File::open(&self.dir)?.sync_all()?;
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.sync_all()?;
        self.len = 0;
        Ok(())
    }
}

/// Applies every whole transaction in the journal; truncates a torn tail. Returns how many applied.
fn replay(file: &mut File, data: &mut Data) -> io::Result<usize> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(&mut *file);
    let mut offset: u64 = 0;
    let mut applied = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        match parse_line(&line) {
            Some(records) => {
                for record in records {
                    data.apply(record);
                }
                applied += 1;
                offset += n as u64;
            }
            None => {
                let mut rest = Vec::new();
                reader.read_to_end(&mut rest)?;
                if rest.iter().any(|b| !b.is_ascii_whitespace()) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("journal is corrupt at byte {offset}, before its last record"),
                    ));
                }
                tracing::warn!(offset, "dropping a torn journal record left by a crash");
                break;
            }
        }
    }
    drop(reader);
    file.set_len(offset)?;
    file.seek(SeekFrom::End(0))?;
    Ok(applied)
}

fn parse_line(line: &[u8]) -> Option<Vec<Record>> {
    let line = line.strip_suffix(b"\n")?;
    let (crc, json) = (line.get(..8)?, line.get(9..)?);
    let crc = u32::from_str_radix(std::str::from_utf8(crc).ok()?, 16).ok()?;
    if crc != crc32c::crc32c(json) {
        return None;
    }
    serde_json::from_slice(json).ok()
}
