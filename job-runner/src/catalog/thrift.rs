//! A small client of the Hive Metastore's Thrift API: the binary protocol over
//! a plain (unframed) socket, which is what a Metastore speaks by default.
//!
//! Only the few calls [`super`] needs are written, as functions building the
//! request from [`Value`]s by field id, as `hive_metastore.thrift` numbers
//! them. A reply is decoded into a generic [`Value`] tree, so fields this code
//! does not know (a newer Metastore's) are read and skipped, never a failure.

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const T_STOP: u8 = 0;
const T_BOOL: u8 = 2;
const T_BYTE: u8 = 3;
const T_DOUBLE: u8 = 4;
const T_I16: u8 = 6;
const T_I32: u8 = 8;
const T_I64: u8 = 10;
const T_STRING: u8 = 11;
const T_STRUCT: u8 = 12;
const T_MAP: u8 = 13;
const T_SET: u8 = 14;
const T_LIST: u8 = 15;

const VERSION_1: u32 = 0x8001_0000;
const MESSAGE_CALL: u8 = 1;
const MESSAGE_REPLY: u8 = 2;
const MESSAGE_EXCEPTION: u8 = 3;

/// Nesting deeper than this in a reply is refused (a Metastore's replies nest
/// a handful of levels).
const MAX_DEPTH: usize = 64;
/// Strings and containers larger than this in a reply are refused rather than
/// allocated (a corrupt or foreign stream).
const MAX_LEN: usize = 256 << 20;

/// A Thrift value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// bool
    Bool(bool),
    /// byte (i8)
    Byte(i8),
    /// double
    Double(f64),
    /// i16
    I16(i16),
    /// i32
    I32(i32),
    /// i64
    I64(i64),
    /// string or binary
    Str(Vec<u8>),
    /// A struct: its set fields by id.
    Struct(Vec<(i16, Value)>),
    /// A map: key type, value type, entries.
    Map(u8, u8, Vec<(Value, Value)>),
    /// A set: element type, elements.
    Set(u8, Vec<Value>),
    /// A list: element type, elements.
    List(u8, Vec<Value>),
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ThriftError {
    /// The socket failed (refused, reset, timed out).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The reply is not what the protocol allows.
    #[error("bad reply to {call}: {reason}")]
    Protocol {
        /// The call.
        call: String,
        /// What was wrong.
        reason: String,
    },
    /// The server could not run the call at all (TApplicationException:
    /// unknown method, internal error).
    #[error("{call}: the Metastore failed the call: {message}")]
    Application {
        /// The call.
        call: String,
        /// The server's message.
        message: String,
    },
    /// The call raised one of its declared exceptions (field `id` of the
    /// result: e.g. NoSuchObjectException, AlreadyExistsException).
    #[error("{call}: {message}")]
    Declared {
        /// The call.
        call: String,
        /// The result field that carried it (1 = the first `throws`).
        id: i16,
        /// The exception's message.
        message: String,
    },
}

impl Value {
    /// A string.
    pub fn str(s: &str) -> Value {
        Value::Str(s.as_bytes().to_vec())
    }

    /// A list of structs.
    pub fn structs(items: Vec<Value>) -> Value {
        Value::List(T_STRUCT, items)
    }

    /// A list of strings.
    pub fn strings<'a>(items: impl IntoIterator<Item = &'a str>) -> Value {
        Value::List(T_STRING, items.into_iter().map(Value::str).collect())
    }

    /// A map of strings to strings.
    pub fn string_map<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
        Value::Map(
            T_STRING,
            T_STRING,
            entries
                .into_iter()
                .map(|(k, v)| (Value::str(k), Value::str(v)))
                .collect(),
        )
    }

    fn type_id(&self) -> u8 {
        match self {
            Value::Bool(_) => T_BOOL,
            Value::Byte(_) => T_BYTE,
            Value::Double(_) => T_DOUBLE,
            Value::I16(_) => T_I16,
            Value::I32(_) => T_I32,
            Value::I64(_) => T_I64,
            Value::Str(_) => T_STRING,
            Value::Struct(_) => T_STRUCT,
            Value::Map(..) => T_MAP,
            Value::Set(..) => T_SET,
            Value::List(..) => T_LIST,
        }
    }

    /// Field `id` of a struct.
    pub fn field(&self, id: i16) -> Option<&Value> {
        match self {
            Value::Struct(fields) => fields.iter().find(|(i, _)| *i == id).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(bytes) => std::str::from_utf8(bytes).ok(),
            _ => None,
        }
    }

    /// The elements of a list or set.
    pub fn items(&self) -> &[Value] {
        match self {
            Value::List(_, items) | Value::Set(_, items) => items,
            _ => &[],
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Value::Bool(b) => out.push(u8::from(*b)),
            Value::Byte(b) => out.push(*b as u8),
            Value::Double(d) => out.extend_from_slice(&d.to_bits().to_be_bytes()),
            Value::I16(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::I32(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::I64(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::Str(bytes) => {
                out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                out.extend_from_slice(bytes);
            }
            Value::Struct(fields) => {
                for (id, value) in fields {
                    out.push(value.type_id());
                    out.extend_from_slice(&id.to_be_bytes());
                    value.write(out);
                }
                out.push(T_STOP);
            }
            Value::Map(k, v, entries) => {
                out.push(*k);
                out.push(*v);
                out.extend_from_slice(&(entries.len() as i32).to_be_bytes());
                for (key, value) in entries {
                    key.write(out);
                    value.write(out);
                }
            }
            Value::Set(t, items) | Value::List(t, items) => {
                out.push(*t);
                out.extend_from_slice(&(items.len() as i32).to_be_bytes());
                for item in items {
                    item.write(out);
                }
            }
        }
    }
}

struct Decoder<R> {
    input: R,
}

impl<R: Read> Decoder<R> {
    fn bytes<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.input.read_exact(&mut buf)?;
        Ok(buf)
    }

    fn u8(&mut self) -> std::io::Result<u8> {
        Ok(self.bytes::<1>()?[0])
    }

    fn i16(&mut self) -> std::io::Result<i16> {
        Ok(i16::from_be_bytes(self.bytes()?))
    }

    fn i32(&mut self) -> std::io::Result<i32> {
        Ok(i32::from_be_bytes(self.bytes()?))
    }

    fn len(&mut self) -> std::io::Result<usize> {
        let n = self.i32()?;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= MAX_LEN)
            .ok_or_else(|| invalid(format!("length {n} out of range")))
    }

    fn string(&mut self) -> std::io::Result<Vec<u8>> {
        let n = self.len()?;
        let mut buf = vec![0u8; n];
        self.input.read_exact(&mut buf)?;
        Ok(buf)
    }

    fn value(&mut self, ty: u8, depth: usize) -> std::io::Result<Value> {
        if depth > MAX_DEPTH {
            return Err(invalid("nesting too deep".to_owned()));
        }
        Ok(match ty {
            T_BOOL => Value::Bool(self.u8()? != 0),
            T_BYTE => Value::Byte(self.u8()? as i8),
            T_DOUBLE => Value::Double(f64::from_bits(u64::from_be_bytes(self.bytes()?))),
            T_I16 => Value::I16(self.i16()?),
            T_I32 => Value::I32(self.i32()?),
            T_I64 => Value::I64(i64::from_be_bytes(self.bytes()?)),
            T_STRING => Value::Str(self.string()?),
            T_STRUCT => {
                let mut fields = Vec::new();
                loop {
                    let t = self.u8()?;
                    if t == T_STOP {
                        break;
                    }
                    let id = self.i16()?;
                    fields.push((id, self.value(t, depth + 1)?));
                }
                Value::Struct(fields)
            }
            T_MAP => {
                let (k, v) = (self.u8()?, self.u8()?);
                let n = self.len()?;
                let mut entries = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    entries.push((self.value(k, depth + 1)?, self.value(v, depth + 1)?));
                }
                Value::Map(k, v, entries)
            }
            T_SET | T_LIST => {
                let t = self.u8()?;
                let n = self.len()?;
                let mut items = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    items.push(self.value(t, depth + 1)?);
                }
                if ty == T_SET {
                    Value::Set(t, items)
                } else {
                    Value::List(t, items)
                }
            }
            other => return Err(invalid(format!("unknown type {other}"))),
        })
    }
}

fn invalid(reason: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, reason)
}

/// One connection to a Metastore.
pub struct Connection {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
    seq: i32,
}

impl Connection {
    /// Connects to `host:port`, with `timeout` for the connection and for
    /// every read and write after it.
    pub fn connect(address: &str, timeout: Duration) -> Result<Connection, ThriftError> {
        let mut last = None;
        for addr in address.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(timeout))?;
                    stream.set_write_timeout(Some(timeout))?;
                    stream.set_nodelay(true)?;
                    return Ok(Connection {
                        reader: BufReader::new(stream.try_clone()?),
                        writer: BufWriter::new(stream),
                        seq: 0,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .unwrap_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "no address to connect to")
            })
            .into())
    }

    /// Sets the deadline of every read and write from now on.
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), ThriftError> {
        self.writer.get_ref().set_read_timeout(Some(timeout))?;
        self.writer.get_ref().set_write_timeout(Some(timeout))?;
        Ok(())
    }

    /// Calls `method` with `args` (the fields of its `_args` struct) and
    /// returns the `success` field of the result (`None` for a void method).
    pub fn call(
        &mut self,
        method: &str,
        args: Vec<(i16, Value)>,
    ) -> Result<Option<Value>, ThriftError> {
        self.seq = self.seq.wrapping_add(1);
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(&(VERSION_1 | u32::from(MESSAGE_CALL)).to_be_bytes());
        Value::str(method).write(&mut out);
        out.extend_from_slice(&self.seq.to_be_bytes());
        Value::Struct(args).write(&mut out);
        self.writer.write_all(&out)?;
        self.writer.flush()?;

        let protocol = |reason: String| ThriftError::Protocol {
            call: method.to_owned(),
            reason,
        };
        let mut decoder = Decoder {
            input: &mut self.reader,
        };
        let header = decoder.i32()? as u32;
        if header & 0xffff_0000 != VERSION_1 {
            return Err(protocol(format!(
                "not a strict binary-protocol message (header {header:#010x}); is this a Hive Metastore's Thrift port, without SASL or framing?"
            )));
        }
        let kind = (header & 0xff) as u8;
        let name = decoder.string()?;
        let seq = decoder.i32()?;
        let body = decoder.value(T_STRUCT, 0)?;
        if name != method.as_bytes() || seq != self.seq {
            return Err(protocol(format!(
                "reply to {} (sequence {seq}), not to this call (sequence {})",
                String::from_utf8_lossy(&name),
                self.seq
            )));
        }
        match kind {
            MESSAGE_REPLY => {}
            MESSAGE_EXCEPTION => {
                return Err(ThriftError::Application {
                    call: method.to_owned(),
                    message: body
                        .field(1)
                        .and_then(Value::as_str)
                        .unwrap_or("(no message)")
                        .to_owned(),
                });
            }
            other => return Err(protocol(format!("message type {other}"))),
        }
        let Value::Struct(fields) = body else {
            return Err(protocol("the result is not a struct".to_owned()));
        };
        let mut success = None;
        for (id, value) in fields {
            if id == 0 {
                success = Some(value);
            } else {
                return Err(ThriftError::Declared {
                    call: method.to_owned(),
                    id,
                    // Every Metastore exception's field 1 is its message.
                    message: value
                        .field(1)
                        .and_then(Value::as_str)
                        .unwrap_or("(no message)")
                        .to_owned(),
                });
            }
        }
        Ok(success)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_as_written() {
        let value = Value::Struct(vec![
            (1, Value::str("name")),
            (2, Value::I32(-7)),
            (3, Value::string_map([("a", "b")])),
            (
                4,
                Value::structs(vec![Value::Struct(vec![(1, Value::Bool(true))])]),
            ),
            (5, Value::I64(1 << 40)),
            (6, Value::Double(1.5)),
            (7, Value::I16(3)),
            (8, Value::Byte(-1)),
            (9, Value::Set(T_STRING, vec![Value::str("x")])),
        ]);
        let mut bytes = Vec::new();
        value.write(&mut bytes);
        let mut decoder = Decoder {
            input: bytes.as_slice(),
        };
        assert_eq!(decoder.value(T_STRUCT, 0).unwrap(), value);
    }

    #[test]
    fn a_huge_length_is_refused() {
        let bytes = [0x7f, 0xff, 0xff, 0xff];
        let mut decoder = Decoder { input: &bytes[..] };
        assert!(decoder.value(T_STRING, 0).is_err());
    }
}
