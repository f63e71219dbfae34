//! Answers worked out when a zone is swapped, not per query.
//!
//! Nearly every query a tree's server gets is a plain TXT query for a name of the tree: the
//! root, a branch, a leaf. For those, [`Prebuilt`] holds each name's TXT records already in wire
//! form, their owner written as a pointer to the question (offset 12), so an answer is the
//! query's header and question copied, a few flags set, and the records appended: no parsing
//! into messages, no catalog, no allocation beyond the output buffer. Anything else — other
//! types, unknown names, EDNS versions or options, DO, several questions, answers that would
//! need truncation — is left to the full server (hickory's catalog), which also produces the
//! TC, NXDOMAIN, NODATA, REFUSED and FORMERR answers. A test holds the two to the same answers.

use std::{collections::HashMap, sync::Arc};

use node::enrtree::wire::split_character_strings;

use super::zone::TxtZone;

/// The TXT type and IN class.
const TXT: u16 = 16;
const OPT: u16 = 41;
const IN: u16 = 1;
/// A DNS header's length.
const HEADER: usize = 12;
/// The UDP payload size without EDNS.
const PLAIN_UDP: usize = 512;

/// One name's TXT records, encoded after a question.
#[derive(Debug)]
struct Answer {
    count: u16,
    records: Box<[u8]>,
}

/// The precomputed answers of every served zone, by lower-case wire name.
#[derive(Debug, Default)]
pub(super) struct Prebuilt {
    zones: HashMap<String, HashMap<Box<[u8]>, Arc<Answer>>>,
    names: HashMap<Box<[u8]>, Arc<Answer>>,
}

impl Prebuilt {
    /// The table with `zone`'s answers in place of what it had for that zone.
    pub(super) fn with_zone(&self, zone: &TxtZone) -> Self {
        let mut zones = self.zones.clone();
        zones.insert(zone.origin.to_ascii_lowercase(), encode_zone(zone));
        let names =
            zones.values().flat_map(|z| z.iter().map(|(k, v)| (k.clone(), v.clone()))).collect();
        Self { zones, names }
    }

    /// Writes the answer to `query` into `out` if it is a plain TXT query for a name this
    /// table holds and the answer fits the client's UDP size; `false` leaves it to the full
    /// server.
    pub(super) fn answer(&self, query: &[u8], out: &mut Vec<u8>) -> bool {
        // The name's lower-case key is written into `out` first (no allocation per query),
        // then `out` is overwritten with the answer.
        let Some(plain) = PlainQuery::parse(query, out) else { return false };
        if plain.qtype != TXT || plain.qclass != IN {
            return false;
        }
        let Some(answer) = self.names.get(out.as_slice()) else { return false };
        let limit = plain.edns.map_or(PLAIN_UDP, |size| usize::from(size).max(PLAIN_UDP));
        out.clear();
        out.extend_from_slice(&query[..2]);
        // QR, opcode 0, AA, RD as asked; RA 0, AD 0, CD as asked, NOERROR.
        out.push(0x80 | 0x04 | (query[2] & 0x01));
        out.push(query[3] & 0x10);
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&answer.count.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&u16::from(plain.edns.is_some()).to_be_bytes());
        out.extend_from_slice(&query[HEADER..plain.question_end]);
        out.extend_from_slice(&answer.records);
        if let Some(size) = plain.edns {
            // The client's own size back, as the full server (hickory) answers.
            out.push(0);
            out.extend_from_slice(&OPT.to_be_bytes());
            out.extend_from_slice(&size.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        }
        out.len() <= limit
    }
}

/// A query the table may answer: one question, no compression, at most an EDNS(0) OPT
/// record without options or DO.
struct PlainQuery {
    qtype: u16,
    qclass: u16,
    /// Where the question ends in the query.
    question_end: usize,
    /// The client's UDP payload size, with EDNS.
    edns: Option<u16>,
}

impl PlainQuery {
    /// Parses `query`, writing the question's name in lower-case wire form into `key`.
    fn parse(query: &[u8], key: &mut Vec<u8>) -> Option<Self> {
        let header = query.get(..HEADER)?;
        let count = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
        // A query (QR 0), opcode QUERY, not truncated; one question, nothing else but OPT.
        if header[2] & 0xfa != 0 || count(4) != 1 || count(6) != 0 || count(8) != 0 {
            return None;
        }
        let additional = count(10);
        let question_end = question_end(query)?;
        let name_end = question_end - 4;
        // Length octets are at most 63, below 'A': lowering the whole wire name lowers only
        // the letters.
        key.clear();
        key.extend(query[HEADER..name_end].iter().map(u8::to_ascii_lowercase));
        let field = |at: usize| Some(u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]));
        let (qtype, qclass) = (field(name_end)?, field(name_end + 2)?);
        let edns = match additional {
            0 if question_end == query.len() => None,
            1 => {
                // Root owner, OPT, the size, extended RCODE 0, version 0, no DO, no options.
                let opt = query.get(question_end..)?;
                if opt.len() != 11 || opt[0] != 0 || field(question_end + 1)? != OPT {
                    return None;
                }
                if opt[5..11] != [0, 0, 0, 0, 0, 0] {
                    return None;
                }
                Some(field(question_end + 3)?)
            }
            _ => return None,
        };
        Some(Self { qtype, qclass, question_end, edns })
    }
}

/// Where a query's one question ends: its name (uncompressed, at most 255 bytes), type and
/// class after the header; `None` if the query is cut short or the name compressed.
pub(super) fn question_end(query: &[u8]) -> Option<usize> {
    let mut at = HEADER;
    loop {
        let len = usize::from(*query.get(at)?);
        if len & 0xc0 != 0 {
            return None;
        }
        at += 1 + len;
        if at - HEADER > 255 {
            return None;
        }
        if len == 0 {
            break;
        }
    }
    (at + 4 <= query.len()).then_some(at + 4)
}

/// `name` (absolute or not) in lower-case wire form.
fn wire_name(name: &str) -> Option<Vec<u8>> {
    let mut wire = Vec::with_capacity(name.len() + 2);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        wire.push(label.len() as u8);
        wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    wire.push(0);
    (wire.len() <= 255).then_some(wire)
}

/// Every TXT name of `zone` with its records encoded (an RRset's records in zone order).
fn encode_zone(zone: &TxtZone) -> HashMap<Box<[u8]>, Arc<Answer>> {
    let mut sets: HashMap<Vec<u8>, (u16, Vec<u8>)> = HashMap::new();
    for record in &zone.records {
        // Names the full server refuses to load never reach it; none is served from here.
        let Some(name) = wire_name(&record.name) else { continue };
        let mut rdata = Vec::with_capacity(record.text.len() + 4);
        for chunk in split_character_strings(&record.text) {
            rdata.push(chunk.len() as u8);
            rdata.extend_from_slice(chunk.as_bytes());
        }
        let Ok(rdlength) = u16::try_from(rdata.len()) else { continue };
        let (count, bytes) = sets.entry(name).or_default();
        *count += 1;
        bytes.extend_from_slice(&[0xc0, HEADER as u8]);
        bytes.extend_from_slice(&TXT.to_be_bytes());
        bytes.extend_from_slice(&IN.to_be_bytes());
        bytes.extend_from_slice(&record.ttl.to_be_bytes());
        bytes.extend_from_slice(&rdlength.to_be_bytes());
        bytes.extend_from_slice(&rdata);
    }
    sets.into_iter()
        .map(|(name, (count, records))| {
            (
                name.into_boxed_slice(),
                Arc::new(Answer { count, records: records.into_boxed_slice() }),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use hickory_proto::{
        op::{Edns, Message, Query},
        rr::{Name, RecordType},
    };

    use super::*;
    use crate::publish::{dns_server::ZoneCatalog, zone::TxtRecord};

    fn zone() -> TxtZone {
        let mut zone = TxtZone::new("fleet.test", 7);
        let record = |name: &str, ttl, text: String| TxtRecord { name: name.into(), ttl, text };
        zone.records = vec![
            record("boot.fleet.test", 60, "enrtree-root:v1 e=AAAA l=BBBB seq=7 sig=xyz".into()),
            record("ABCDEF.boot.fleet.test", 86_400, "enrtree-branch:CCCC,DDDD".into()),
            // Longer than one character-string: split as the full server splits it.
            record("LEAF.boot.fleet.test", 86_400, format!("enr:-{}", "x".repeat(300))),
            record("two.fleet.test", 300, "first".into()),
            record("two.fleet.test", 300, "second".into()),
        ];
        zone
    }

    fn query(name: &str, kind: RecordType, edns: Option<(u16, bool)>) -> Vec<u8> {
        let mut query = Message::query();
        query.metadata.id = 0x5a5a;
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
        if let Some((size, dnssec)) = edns {
            let mut options = Edns::new();
            options.set_max_payload(size);
            options.flags_mut().dnssec_ok = dnssec;
            query.set_edns(options);
        }
        query.to_vec().unwrap()
    }

    /// What a client reads from an answer, for comparing two encodings of it.
    fn read(answer: &[u8]) -> String {
        let message = Message::from_vec(answer).unwrap();
        let questions: Vec<String> = message.queries.iter().map(|q| q.to_string()).collect();
        let records = |rs: &[hickory_proto::rr::Record]| -> Vec<String> {
            // Owner names compare without case: ours point at the question (its case, as Knot
            // answers), hickory writes the zone's.
            rs.iter().map(|r| format!("{} {} {}", r.name.to_lowercase(), r.ttl, r.data)).collect()
        };
        format!(
            "{:?} q={questions:?} an={:?} ns={:?} edns={:?}",
            message.metadata,
            records(&message.answers),
            records(&message.authorities),
            message.edns.as_ref().map(|e| (e.max_payload(), e.version(), e.flags().dnssec_ok)),
        )
    }

    #[tokio::test]
    async fn plain_txt_queries_get_the_full_servers_answer_and_the_rest_goes_to_it() {
        let zone = zone();
        let catalog = ZoneCatalog::new(vec![zone.clone()]).unwrap();
        let table = Prebuilt::default().with_zone(&zone);
        // Case as asked (0x20), with and without EDNS, every name.
        for name in [
            "boot.fleet.test.",
            "BoOt.FlEeT.tEsT.",
            "abcdef.boot.fleet.test.",
            "LEAF.boot.fleet.test.",
            "two.fleet.test.",
        ] {
            for edns in [None, Some((1232, false)), Some((4096, false)), Some((512, false))] {
                let request = query(name, RecordType::TXT, edns);
                let fast = catalog
                    .prebuilt_answer(&request)
                    .unwrap_or_else(|| panic!("{name} {edns:?}: {request:02x?}"));
                let full = catalog.answer(&request, false).await.unwrap();
                assert_eq!(read(&fast), read(&full), "{name} {edns:?}");
                assert!(fast.starts_with(&[0x5a, 0x5a]));
            }
        }
        // Left to the full server: another type, a name not served, DO, an EDNS version,
        // garbage, a response, two questions, an answer over 512 bytes without EDNS.
        let mut not_plain = vec![
            query("boot.fleet.test.", RecordType::A, None),
            query("nope.fleet.test.", RecordType::TXT, None),
            query("other.example.", RecordType::TXT, None),
            query("boot.fleet.test.", RecordType::TXT, Some((1232, true))),
            b"\x00\x01garbage".to_vec(),
        ];
        let mut response = query("boot.fleet.test.", RecordType::TXT, None);
        response[2] |= 0x80;
        not_plain.push(response);
        let mut two = Message::query();
        for name in ["boot.fleet.test.", "two.fleet.test."] {
            two.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::TXT));
        }
        not_plain.push(two.to_vec().unwrap());
        let mut big = TxtZone::new("fleet.test", 8);
        big.records.push(TxtRecord {
            name: "big.fleet.test".into(),
            ttl: 60,
            text: "y".repeat(600),
        });
        let big_table = Prebuilt::default().with_zone(&big);
        let mut out = Vec::new();
        assert!(!big_table.answer(&query("big.fleet.test.", RecordType::TXT, None), &mut out));
        assert!(
            big_table
                .answer(&query("big.fleet.test.", RecordType::TXT, Some((1232, false))), &mut out)
        );
        for request in not_plain {
            assert!(!table.answer(&request, &mut out), "{request:?}");
        }
        // A swapped zone replaces that zone's answers whole.
        let mut next = zone.clone();
        next.records.retain(|r| r.name != "two.fleet.test");
        let swapped = table.with_zone(&next);
        assert!(!swapped.answer(&query("two.fleet.test.", RecordType::TXT, None), &mut out));
        assert!(swapped.answer(&query("boot.fleet.test.", RecordType::TXT, None), &mut out));
    }
}
