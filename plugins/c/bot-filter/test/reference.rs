//! The Rust bot filter's verdicts, for the differential test: the very rules
//! of plugins/bot-filter/src/rules.rs, behind the Rust SDK's reading of a
//! field (bytes that are not UTF-8 read as ""). An example of the bot-filter
//! crate, built natively by run.sh.
//!
//! stdin: records of (u32 LE length, User-Agent bytes, u32 LE length, IP
//! bytes); stdout: one verdict a record, as u16 LE.
use std::io::{Read, Write};

use tally_plugin_bot_filter::rules::Rules;

fn field<'a>(buf: &'a [u8], at: &mut usize) -> &'a [u8] {
    let len = u32::from_le_bytes(buf[*at..*at + 4].try_into().unwrap()) as usize;
    let bytes = &buf[*at + 4..*at + 4 + len];
    *at += 4 + len;
    bytes
}

fn main() {
    let mut buf = Vec::new();
    std::io::stdin().read_to_end(&mut buf).unwrap();
    let rules = Rules::new();
    let (mut at, mut out) = (0, Vec::new());
    while at < buf.len() {
        let ua = std::str::from_utf8(field(&buf, &mut at)).unwrap_or("");
        let ip = std::str::from_utf8(field(&buf, &mut at)).unwrap_or("");
        out.extend_from_slice(&rules.verdict(ua, ip).to_le_bytes());
    }
    std::io::stdout().write_all(&out).unwrap();
}
