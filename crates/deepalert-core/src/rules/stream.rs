//! Events read from a stream, one at a time: a CloudTrail log file (`{"Records": [...]}`,
//! tens of MB once gunzipped), a JSON array of events, one event, or JSON lines
//! (concatenated documents of any of those). Each record is parsed on its own, so memory
//! is bounded by the largest record, not by the file, and one bad record loses only
//! itself.

use std::fmt;
use std::io::Read;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{Event, EventError};

/// One element of an events document: a CloudTrail record (it has `eventSource` and no
/// `detail`) or an EventBridge event.
pub(crate) fn one(v: Value) -> Result<Event, EventError> {
    if v.get("eventSource").is_some() && v.get("detail").is_none() {
        Event::from_cloudtrail(v)
    } else {
        Event::from_eventbridge(v)
    }
}

/// Reads every event of `reader`, handing each (or why it is not one) to `each`, in
/// order. A document that is not JSON stops the reading there, with the error (line and
/// column): what came before was handed out already. Returns how many were handed out.
pub fn read_events<R: Read>(
    reader: R,
    mut each: impl FnMut(Result<Event, EventError>),
) -> Result<usize, EventError> {
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(
        256 * 1024,
        reader,
    ));
    let mut sink = Sink {
        each: &mut each,
        count: 0,
    };
    loop {
        if let Err(e) = Document(&mut sink).deserialize(&mut de) {
            // Nothing at all (an empty file) is no events, not an error.
            if e.is_eof() && sink.count == 0 && e.line() == 1 && e.column() == 0 {
                return Ok(0);
            }
            return Err(EventError(format!("events are not JSON: {e}")));
        }
        match de.end() {
            Ok(()) => return Ok(sink.count),
            // Another document follows (JSON lines).
            Err(e) if e.is_syntax() && e.to_string().starts_with("trailing characters") => {}
            Err(e) => return Err(EventError(format!("events are not JSON: {e}"))),
        }
    }
}

struct Sink<'a> {
    each: &'a mut dyn FnMut(Result<Event, EventError>),
    count: usize,
}

impl Sink<'_> {
    fn give(&mut self, e: Result<Event, EventError>) {
        self.count += 1;
        (self.each)(e);
    }
}

fn kind(v: &str) -> EventError {
    EventError(format!(
        "expected an event, an array of events or a CloudTrail log file, got {v}"
    ))
}

/// A top-level document.
struct Document<'s, 'a>(&'s mut Sink<'a>);

impl<'de> DeserializeSeed<'de> for Document<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Document<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event, an array of events or a CloudTrail log file")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(v) = seq.next_element::<Value>()? {
            self.0.give(one(v));
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut obj = serde_json::Map::new();
        let mut records = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "Records" {
                records = true;
                map.next_value_seed(Records(self.0))?;
            } else {
                obj.insert(key, map.next_value::<Value>()?);
            }
        }
        if !records {
            self.0.give(one(Value::Object(obj)));
        }
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.0.give(Err(kind("a boolean")));
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.0.give(Err(kind("a number")));
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        self.0.give(Err(kind("a number")));
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.0.give(Err(kind("a number")));
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        self.0.give(Err(kind("a string")));
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.give(Err(kind("null")));
        Ok(())
    }
}

/// A CloudTrail log file's `Records`: each element a record, parsed on its own.
struct Records<'s, 'a>(&'s mut Sink<'a>);

impl<'de> DeserializeSeed<'de> for Records<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Records<'_, '_> {
    fn not_an_array(self) {
        self.0.give(Err(EventError(
            "`Records` of a CloudTrail log file must be an array".into(),
        )));
    }
}

impl<'de> Visitor<'de> for Records<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of CloudTrail records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(v) = seq.next_element::<Value>()? {
            self.0.give(Event::from_cloudtrail(v));
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.not_an_array();
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.not_an_array();
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.not_an_array();
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        self.not_an_array();
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.not_an_array();
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        self.not_an_array();
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.not_an_array();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> (Vec<Result<Event, EventError>>, Result<usize, EventError>) {
        let mut out = Vec::new();
        let n = read_events(text.as_bytes(), |e| out.push(e));
        (out, n)
    }

    const EVENT: &str =
        r#"{"source":"aws.iam","detail-type":"x","time":"2026-11-20T03:14:07Z","detail":{}}"#;
    const RECORD: &str = r#"{"eventSource":"iam.amazonaws.com","eventName":"CreateUser","eventTime":"2026-11-20T03:14:07Z"}"#;

    #[test]
    fn every_shape_of_events_document() {
        let (got, n) = read(EVENT);
        assert_eq!((got.len(), n.unwrap()), (1, 1));
        assert!(got[0].is_ok());
        let (got, _) = read(&format!("[{EVENT}, 5, {RECORD}]"));
        assert!(got[0].is_ok() && got[1].is_err() && got[2].is_ok());
        let (got, _) = read(&format!(
            r#"{{"Records": [{RECORD}, {{"eventName": "x"}}]}}"#
        ));
        assert!(got[0].is_ok());
        assert!(got[1].as_ref().unwrap_err().0.contains("eventSource"));
        // JSON lines, of events and of log files.
        let (got, n) = read(&format!("{EVENT}\n{RECORD}\n{{\"Records\": [{RECORD}]}}\n"));
        assert_eq!(n.unwrap(), 3);
        assert!(got.iter().all(Result::is_ok));
        let (got, n) = read("");
        assert_eq!((got.len(), n.unwrap()), (0, 0));
        let (got, _) = read("5");
        assert!(got[0].as_ref().unwrap_err().0.contains("a number"));
        let (got, _) = read(r#"{"Records": {"a": 1}}"#);
        assert!(got[0].as_ref().unwrap_err().0.contains("must be an array"));
    }

    #[test]
    fn a_broken_document_stops_there_and_keeps_what_came_before() {
        let (got, n) = read(&format!("{EVENT}\n{{not json"));
        assert_eq!(got.len(), 1);
        let e = n.unwrap_err();
        assert!(e.0.contains("not JSON") && e.0.contains("line 2"), "{e}");
    }
}
