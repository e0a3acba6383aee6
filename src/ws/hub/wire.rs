//! What one node of a Hub tells the others through the broker: an envelope per broadcast,
//! direct message or presence report, in a small binary format of our own.
//!
//! Every node publishes on, and subscribes to, one channel (Redis) or subject (NATS) per hub
//! namespace, so the broker keeps the order in which one node published (Redis pub/sub and NATS
//! core both keep a connection's order): per-room order from one sender holds across nodes.
//!
//! Layout, integers big-endian:
//!
//! ```text
//! version u8 (1) | kind u8 | origin node u64 | body
//! kind 0 broadcast:  message type u8 (0 text, 1 binary) | payload (the rest)
//! kind 1 room:       message type u8 | room length u16 | room (UTF-8) | payload
//! kind 2 one:        message type u8 | target node u64 | target local u64 | payload
//! kind 3 presence:   heartbeat ms u32 | rooms u32 | (room length u16 | room | members u32)*
//! kind 4 room count: heartbeat ms u32 | room length u16 | room | members u32
//! kind 5 leaving:    (empty)
//! ```
//!
//! Envelopes come from the network: [`decode`] checks every length and text payloads for UTF-8
//! (RFC 6455 section 8.1 holds for what a node delivers, whoever published it), and refuses
//! anything else with a reason for the trace.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::ws::{ConnectionId, Message, Utf8Bytes};

const VERSION: u8 = 1;
const HEADER: usize = 2 + 8;

/// Where a published message goes on every other node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// Every member of the hub.
    All,
    /// The members of a room.
    Room(String),
    /// One connection, wherever it lives.
    One(ConnectionId),
}

/// A decoded envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Envelope {
    /// A message for local members.
    Message {
        origin: u64,
        target: Target,
        message: Message,
    },
    /// A node's whole presence: members per room, and how often it reports.
    Presence {
        origin: u64,
        heartbeat_ms: u32,
        rooms: Vec<(String, u32)>,
    },
    /// One room's member count on a node changed.
    RoomCount {
        origin: u64,
        heartbeat_ms: u32,
        room: String,
        members: u32,
    },
    /// A node is shutting its hub down: forget its members now.
    Leaving { origin: u64 },
}

fn header(kind: u8, origin: u64, capacity: usize) -> BytesMut {
    let mut out = BytesMut::with_capacity(HEADER + capacity);
    out.put_u8(VERSION);
    out.put_u8(kind);
    out.put_u64(origin);
    out
}

fn put_room(out: &mut BytesMut, room: &str) {
    // Room names longer than a u16 are refused by the hub before they get here.
    out.put_u16(room.len() as u16);
    out.put_slice(room.as_bytes());
}

/// The longest room name that can cross nodes, in bytes.
pub(super) const MAX_ROOM: usize = u16::MAX as usize;

/// Encodes a message for `target`; the payload is copied once into the envelope.
pub(super) fn encode_message(origin: u64, target: &Target, message: &Message) -> Bytes {
    let payload = message.as_bytes();
    let kind_of_message = match message {
        Message::Text(_) => 0,
        Message::Binary(_) => 1,
    };
    let mut out = match target {
        Target::All => {
            let mut out = header(0, origin, 1 + payload.len());
            out.put_u8(kind_of_message);
            out
        }
        Target::Room(room) => {
            let mut out = header(1, origin, 3 + room.len() + payload.len());
            out.put_u8(kind_of_message);
            put_room(&mut out, room);
            out
        }
        Target::One(id) => {
            let mut out = header(2, origin, 17 + payload.len());
            out.put_u8(kind_of_message);
            out.put_u64(id.node());
            out.put_u64(id.get());
            out
        }
    };
    out.put_slice(payload);
    out.freeze()
}

/// Encodes a node's whole presence.
pub(super) fn encode_presence<'a>(
    origin: u64,
    heartbeat_ms: u32,
    rooms: impl ExactSizeIterator<Item = (&'a str, usize)>,
) -> Bytes {
    let mut out = header(3, origin, 8 + rooms.len() * 16);
    out.put_u32(heartbeat_ms);
    out.put_u32(rooms.len() as u32);
    for (room, members) in rooms {
        put_room(&mut out, room);
        out.put_u32(u32::try_from(members).unwrap_or(u32::MAX));
    }
    out.freeze()
}

/// Encodes one room's member count on a node.
pub(super) fn encode_room_count(
    origin: u64,
    heartbeat_ms: u32,
    room: &str,
    members: usize,
) -> Bytes {
    let mut out = header(4, origin, 10 + room.len());
    out.put_u32(heartbeat_ms);
    put_room(&mut out, room);
    out.put_u32(u32::try_from(members).unwrap_or(u32::MAX));
    out.freeze()
}

/// Encodes a node's goodbye.
pub(super) fn encode_leaving(origin: u64) -> Bytes {
    header(5, origin, 0).freeze()
}

/// Why an envelope was refused.
pub(super) type Refused = &'static str;

fn need(input: &Bytes, len: usize) -> Result<(), Refused> {
    if input.remaining() < len {
        Err("truncated envelope")
    } else {
        Ok(())
    }
}

fn get_room(input: &mut Bytes) -> Result<String, Refused> {
    need(input, 2)?;
    let len = usize::from(input.get_u16());
    need(input, len)?;
    let room = input.split_to(len);
    String::from_utf8(room.to_vec()).map_err(|_| "room name is not UTF-8")
}

fn get_message(kind: u8, payload: Bytes) -> Result<Message, Refused> {
    match kind {
        0 => Utf8Bytes::try_from(payload)
            .map(Message::Text)
            .map_err(|_| "text payload is not UTF-8"),
        1 => Ok(Message::Binary(payload)),
        _ => Err("unknown message type"),
    }
}

/// Decodes an envelope; the payload of a message shares `input`'s buffer.
pub(super) fn decode(mut input: Bytes) -> Result<Envelope, Refused> {
    need(&input, HEADER)?;
    if input.get_u8() != VERSION {
        return Err("unknown envelope version");
    }
    let kind = input.get_u8();
    let origin = input.get_u64();
    match kind {
        0..=2 => {
            need(&input, 1)?;
            let message_kind = input.get_u8();
            let target = match kind {
                0 => Target::All,
                1 => Target::Room(get_room(&mut input)?),
                _ => {
                    need(&input, 16)?;
                    let node = input.get_u64();
                    let local = input.get_u64();
                    Target::One(ConnectionId::from_parts(node, local))
                }
            };
            Ok(Envelope::Message {
                origin,
                target,
                message: get_message(message_kind, input)?,
            })
        }
        3 => {
            need(&input, 8)?;
            let heartbeat_ms = input.get_u32();
            let count = input.get_u32() as usize;
            // Each room takes at least 6 bytes: a count that cannot fit is a lie, not a reason
            // to allocate.
            if count > input.remaining() / 6 {
                return Err("truncated envelope");
            }
            let mut rooms = Vec::with_capacity(count);
            for _ in 0..count {
                let room = get_room(&mut input)?;
                need(&input, 4)?;
                rooms.push((room, input.get_u32()));
            }
            Ok(Envelope::Presence {
                origin,
                heartbeat_ms,
                rooms,
            })
        }
        4 => {
            need(&input, 4)?;
            let heartbeat_ms = input.get_u32();
            let room = get_room(&mut input)?;
            need(&input, 4)?;
            Ok(Envelope::RoomCount {
                origin,
                heartbeat_ms,
                room,
                members: input.get_u32(),
            })
        }
        5 => Ok(Envelope::Leaving { origin }),
        _ => Err("unknown envelope kind"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_for_every_target() {
        let id = ConnectionId::from_parts(0xfeed, 42);
        for target in [Target::All, Target::Room("lobby".into()), Target::One(id)] {
            for message in [Message::text("héllo"), Message::binary(vec![0u8, 255, 7])] {
                let encoded = encode_message(9, &target, &message);
                assert_eq!(
                    decode(encoded),
                    Ok(Envelope::Message {
                        origin: 9,
                        target: target.clone(),
                        message,
                    })
                );
            }
        }
    }

    #[test]
    fn presence_round_trips() {
        let rooms = [("a", 3usize), ("bé", 0)];
        let encoded = encode_presence(7, 1000, rooms.iter().map(|(r, n)| (*r, *n)));
        assert_eq!(
            decode(encoded),
            Ok(Envelope::Presence {
                origin: 7,
                heartbeat_ms: 1000,
                rooms: vec![("a".into(), 3), ("bé".into(), 0)],
            })
        );
        assert_eq!(
            decode(encode_room_count(7, 500, "x", 12)),
            Ok(Envelope::RoomCount {
                origin: 7,
                heartbeat_ms: 500,
                room: "x".into(),
                members: 12
            })
        );
        assert_eq!(
            decode(encode_leaving(3)),
            Ok(Envelope::Leaving { origin: 3 })
        );
    }

    #[test]
    fn malformed_envelopes_are_refused() {
        let good = encode_message(1, &Target::Room("room".into()), &Message::text("hi"));
        // Every truncation of a room envelope before its payload is refused.
        for len in 0..HEADER + 1 + 2 + 4 {
            assert!(decode(good.slice(..len)).is_err(), "length {len}");
        }
        let mut bad_text = BytesMut::from(&encode_message(1, &Target::All, &Message::text(""))[..]);
        bad_text.put_slice(&[0xff, 0xfe]);
        assert_eq!(decode(bad_text.freeze()), Err("text payload is not UTF-8"));
        let mut wrong_version = BytesMut::from(&good[..]);
        wrong_version[0] = 2;
        assert_eq!(
            decode(wrong_version.freeze()),
            Err("unknown envelope version")
        );
        // A presence report claiming four billion rooms in a few bytes.
        let mut lying = header(3, 1, 8);
        lying.put_u32(1000);
        lying.put_u32(u32::MAX);
        assert_eq!(decode(lying.freeze()), Err("truncated envelope"));
    }

    #[test]
    fn payload_shares_the_envelope_buffer() {
        let encoded = encode_message(1, &Target::All, &Message::binary(vec![5u8; 64]));
        let start = encoded.as_ptr() as usize;
        let Ok(Envelope::Message { message, .. }) = decode(encoded.clone()) else {
            panic!("decodes")
        };
        assert_eq!(message.as_bytes().as_ptr() as usize, start + HEADER + 1);
    }
}
