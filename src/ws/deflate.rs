//! permessage-deflate (RFC 7692): what the two sides agree on in the opening handshake, and the
//! compression contexts a connection uses afterwards.
//!
//! Negotiation is text: the client lists offers in `Sec-WebSocket-Extensions` (RFC 6455 section
//! 9.1 grammar), the server answers the first one it can honour ([`negotiate`]), and the client
//! checks that answer ([`accept_response`]). What they agree on is a [`PerMessageDeflate`], which
//! the engine turns into an [`Inflater`] and a [`Deflater`]. Both allocate their zlib state only
//! when the first compressed message goes through, so a connection that negotiated deflate and
//! stays quiet costs nothing more than one that did not; a side without context takeover frees its
//! state again whenever the connection goes idle.
//!
//! Without the `deflate` feature the negotiation still parses (so malformed headers are treated
//! alike) but declines every offer, and the codec halves do not exist.

use std::fmt;

/// permessage-deflate settings (RFC 7692), [`Config::deflate`](crate::ws::Config::deflate).
///
/// The same settings serve both roles; parameter names are the RFC's, so `server_*` is about what
/// the server sends and `client_*` about what the client sends, whichever side this is.
///
/// ```
/// use wsgrpc::ws::{Config, DeflateConfig};
///
/// let config = Config::default().deflate(DeflateConfig::default().threshold(1024));
/// assert_eq!(config.deflate.threshold, 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Accept offers (server) or offer (client) permessage-deflate at all. Default `true` with
    /// the `deflate` feature (on by default), and always off without it.
    pub enabled: bool,
    /// Messages shorter than this many bytes (before compression) go out uncompressed, with RSV1
    /// clear (RFC 7692 section 6.1 lets a sender choose per message): compressing a few bytes
    /// costs more CPU than it saves on the wire. Default 64 bytes.
    pub threshold: usize,
    /// The LZ77 window (RFC 7692 section 7.1.2.1) the server compresses with, as a power of two,
    /// 9..=15: a server never uses more than this or than the offer's `server_max_window_bits` (an
    /// offer asking for 8 is declined: zlib compresses raw deflate with 9 bits at least); a client
    /// asks for it in its offer when below 15. A smaller window makes the compressor's state
    /// smaller. Default 15.
    pub server_max_window_bits: u8,
    /// The window the client compresses with (RFC 7692 section 7.1.2.2), 9..=15: a server asks
    /// for it when the client's offer allows (`client_max_window_bits`), which also bounds the
    /// server's inflate window; a client uses it (or less, when the server asks). Default 15.
    pub client_max_window_bits: u8,
    /// The server resets its compressor after every message (RFC 7692 section 7.1.1.1), so its
    /// state (about 270 KiB with a 15-bit window) is freed whenever the connection goes idle,
    /// at the price of a worse ratio for a stream of similar small messages. A server includes it
    /// in every answer (section 7.1.1.1 allows that unasked); a client offers it. Default `true`:
    /// measured on the `echo` example after one compressed message each way, an idle connection
    /// grows the server by about 350 KiB with context takeover on both sides, 57 KiB with this
    /// set alone and 47 KiB with [`client_no_context_takeover`](Self::client_no_context_takeover)
    /// too (no deflate state held; allocator slack), against 4.7 KiB without deflate.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message (RFC 7692 section 7.1.1.2), so the
    /// server's inflate state (about 40 KiB with a 15-bit window) is freed whenever the
    /// connection goes idle, at the price of a worse ratio for similar small messages from the
    /// client. A server includes it in every answer (section 7.1.1.2 allows that unasked); a
    /// client offers it, and then keeps to it whatever the answer. Default `true`.
    pub client_no_context_takeover: bool,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            enabled: cfg!(feature = "deflate"),
            threshold: 64,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            server_no_context_takeover: true,
            client_no_context_takeover: true,
        }
    }
}

impl DeflateConfig {
    /// Permessage-deflate turned off: offers are declined (server), none is made (client).
    pub fn disabled() -> Self {
        DeflateConfig {
            enabled: false,
            ..DeflateConfig::default()
        }
    }

    /// Sets [`DeflateConfig::enabled`] (has no effect without the `deflate` feature).
    #[must_use]
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled && cfg!(feature = "deflate");
        self
    }

    /// Sets [`DeflateConfig::threshold`] in bytes.
    #[must_use]
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// Sets [`DeflateConfig::server_max_window_bits`], clamped to 9..=15.
    #[must_use]
    pub fn server_max_window_bits(mut self, bits: u8) -> Self {
        self.server_max_window_bits = bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        self
    }

    /// Sets [`DeflateConfig::client_max_window_bits`], clamped to 9..=15.
    #[must_use]
    pub fn client_max_window_bits(mut self, bits: u8) -> Self {
        self.client_max_window_bits = bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        self
    }

    /// Sets [`DeflateConfig::server_no_context_takeover`].
    #[must_use]
    pub fn server_no_context_takeover(mut self, on: bool) -> Self {
        self.server_no_context_takeover = on;
        self
    }

    /// Sets [`DeflateConfig::client_no_context_takeover`].
    #[must_use]
    pub fn client_no_context_takeover(mut self, on: bool) -> Self {
        self.client_no_context_takeover = on;
        self
    }
}

/// zlib (and so flate2) refuses an 8-bit window for raw deflate; 9 is the smallest it compresses
/// with.
const MIN_WINDOW_BITS: u8 = 9;
const MAX_WINDOW_BITS: u8 = 15;

/// The extension token (RFC 7692 section 7).
pub(crate) const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// What both sides agreed on for a connection (RFC 7692 section 7.1), as
/// [`Session::compression`](crate::ws::Session::compression) shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PerMessageDeflate {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message.
    pub client_no_context_takeover: bool,
    /// The largest LZ77 window the server compresses with, as a power of two (9..=15).
    pub server_max_window_bits: u8,
    /// The largest LZ77 window the client compresses with, as a power of two (8..=15).
    pub client_max_window_bits: u8,
}

impl fmt::Display for PerMessageDeflate {
    /// The `Sec-WebSocket-Extensions` value a server answers with.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PERMESSAGE_DEFLATE)?;
        if self.server_no_context_takeover {
            f.write_str("; server_no_context_takeover")?;
        }
        if self.client_no_context_takeover {
            f.write_str("; client_no_context_takeover")?;
        }
        if self.server_max_window_bits < MAX_WINDOW_BITS {
            write!(
                f,
                "; server_max_window_bits={}",
                self.server_max_window_bits
            )?;
        }
        if self.client_max_window_bits < MAX_WINDOW_BITS {
            write!(
                f,
                "; client_max_window_bits={}",
                self.client_max_window_bits
            )?;
        }
        Ok(())
    }
}

/// One extension of a `Sec-WebSocket-Extensions` list: its name and parameters.
#[derive(Debug, PartialEq, Eq)]
struct Extension<'a> {
    name: &'a str,
    params: Vec<(&'a str, Option<String>)>,
}

fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(is_tchar)
}

/// Parses one header value into extensions (RFC 6455 section 9.1):
/// `extension *( "," extension )`, `extension = token *( ";" token [ "=" (token | quoted-string) ] )`.
/// `None` when the value does not follow the grammar.
fn parse_extensions(value: &str) -> Option<Vec<Extension<'_>>> {
    let mut extensions = Vec::new();
    let mut rest = value;
    loop {
        let (item, tail) = split_outside_quotes(rest, b',');
        let mut parts = split_params(item)?.into_iter();
        let name = parts.next()?.trim();
        if !is_token(name) {
            return None;
        }
        let mut params = Vec::new();
        for part in parts {
            let part = part.trim();
            let (key, value) = match part.split_once('=') {
                Some((key, value)) => (key.trim(), Some(param_value(value.trim())?)),
                None => (part, None),
            };
            if !is_token(key) {
                return None;
            }
            params.push((key, value));
        }
        extensions.push(Extension { name, params });
        match tail {
            Some(tail) => rest = tail,
            None => return Some(extensions),
        }
    }
}

/// Splits at the first `separator` outside a quoted string.
fn split_outside_quotes(text: &str, separator: u8) -> (&str, Option<&str>) {
    let mut quoted = false;
    let mut escaped = false;
    for (index, byte) in text.bytes().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && byte == b'\\' {
            escaped = true;
        } else if byte == b'"' {
            quoted = !quoted;
        } else if !quoted && byte == separator {
            return (&text[..index], Some(&text[index + 1..]));
        }
    }
    (text, None)
}

fn split_params(item: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut rest = item;
    loop {
        let (part, tail) = split_outside_quotes(rest, b';');
        parts.push(part);
        match tail {
            Some(tail) => rest = tail,
            None => return Some(parts),
        }
    }
}

/// A parameter value: a token, or a quoted string whose content (unescaped) must itself be a
/// token (RFC 6455 section 9.1).
fn param_value(raw: &str) -> Option<String> {
    let value = match raw.strip_prefix('"') {
        Some(inner) => {
            let inner = inner.strip_suffix('"')?;
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                out.push(if c == '\\' { chars.next()? } else { c });
            }
            out
        }
        None => raw.to_owned(),
    };
    is_token(&value).then_some(value)
}

/// A window-bits value: 1*DIGIT in 8..=15, no leading zero (RFC 7692 section 7.1.2).
fn window_bits(value: &str) -> Option<u8> {
    if value.starts_with('0') || value.len() > 2 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|bits| (8..=15).contains(bits))
}

/// The parameters of one permessage-deflate offer or answer, each at most once.
#[derive(Debug, Default)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (allowed in an offer only).
    client_max_window_bits: Option<Option<u8>>,
}

/// Reads the parameters; `None` for an unknown, repeated or ill-valued one (RFC 7692 section 7:
/// such an offer is declined, such an answer fails the connection).
fn params(extension: &Extension<'_>) -> Option<Params> {
    let mut params = Params::default();
    for (key, value) in &extension.params {
        match (*key, value.as_deref()) {
            ("server_no_context_takeover", None) if !params.server_no_context_takeover => {
                params.server_no_context_takeover = true;
            }
            ("client_no_context_takeover", None) if !params.client_no_context_takeover => {
                params.client_no_context_takeover = true;
            }
            ("server_max_window_bits", Some(value)) if params.server_max_window_bits.is_none() => {
                params.server_max_window_bits = Some(window_bits(value)?);
            }
            ("client_max_window_bits", value) if params.client_max_window_bits.is_none() => {
                params.client_max_window_bits = Some(match value {
                    Some(value) => Some(window_bits(value)?),
                    None => None,
                });
            }
            _ => return None,
        }
    }
    Some(params)
}

/// The server side: picks the first permessage-deflate offer of the request's
/// `Sec-WebSocket-Extensions` headers that `config` can honour (RFC 7692 section 5), and says what
/// to answer. `None` declines: the `101` then names no extension and messages go uncompressed.
///
/// An offer is declined when it repeats a parameter, has an unknown one or an invalid value, or
/// asks for `server_max_window_bits=8` (zlib cannot compress with a 256-byte window). A header that
/// does not follow the RFC 6455 section 9.1 grammar is ignored as a whole.
pub(crate) fn negotiate<'a>(
    offers: impl Iterator<Item = &'a [u8]>,
    config: &DeflateConfig,
) -> Option<PerMessageDeflate> {
    if !config.enabled || !cfg!(feature = "deflate") {
        return None;
    }
    for value in offers {
        let Some(extensions) = std::str::from_utf8(value).ok().and_then(parse_extensions) else {
            continue;
        };
        for extension in extensions
            .iter()
            .filter(|e| e.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE))
        {
            let Some(offer) = params(extension) else {
                continue;
            };
            let server_bits = match offer.server_max_window_bits {
                Some(bits) if bits < MIN_WINDOW_BITS => continue,
                Some(bits) => bits.min(config.server_max_window_bits),
                None => config.server_max_window_bits,
            };
            // Only an offer naming client_max_window_bits lets the server limit the client's
            // window (section 7.1.2.2); otherwise the client may use 15.
            let client_bits = match offer.client_max_window_bits {
                Some(limit) => limit
                    .unwrap_or(MAX_WINDOW_BITS)
                    .min(config.client_max_window_bits),
                None => MAX_WINDOW_BITS,
            };
            return Some(PerMessageDeflate {
                server_no_context_takeover: offer.server_no_context_takeover
                    || config.server_no_context_takeover,
                client_no_context_takeover: config.client_no_context_takeover,
                // Named in the answer only when the client offered it (or it is below 15).
                server_max_window_bits: server_bits,
                client_max_window_bits: client_bits,
            });
        }
    }
    None
}

/// The client side: the `Sec-WebSocket-Extensions` offer `config` makes, if any.
#[cfg_attr(not(feature = "client"), allow(dead_code))]
pub(crate) fn offer(config: &DeflateConfig) -> Option<String> {
    if !config.enabled || !cfg!(feature = "deflate") {
        return None;
    }
    let mut offer = String::from(PERMESSAGE_DEFLATE);
    if config.server_no_context_takeover {
        offer.push_str("; server_no_context_takeover");
    }
    if config.client_no_context_takeover {
        offer.push_str("; client_no_context_takeover");
    }
    if config.server_max_window_bits < MAX_WINDOW_BITS {
        offer.push_str(&format!(
            "; server_max_window_bits={}",
            config.server_max_window_bits
        ));
    }
    // Lets the server ask for a smaller window; the value is the most this client will use.
    if config.client_max_window_bits < MAX_WINDOW_BITS {
        offer.push_str(&format!(
            "; client_max_window_bits={}",
            config.client_max_window_bits
        ));
    } else {
        offer.push_str("; client_max_window_bits");
    }
    Some(offer)
}

/// The client side: checks the server's `Sec-WebSocket-Extensions` answer against what
/// [`offer`] sent (RFC 7692 section 5 and 7.1). `Ok(None)` when the server named no extension;
/// `Err` with the reason when the answer must fail the connection: an extension not offered, more
/// than one, an unknown or repeated parameter, an invalid value, or a window larger than offered.
#[cfg_attr(not(feature = "client"), allow(dead_code))]
pub(crate) fn accept_response<'a>(
    answers: impl Iterator<Item = &'a [u8]>,
    config: &DeflateConfig,
) -> Result<Option<PerMessageDeflate>, &'static str> {
    let mut agreed = None;
    for value in answers {
        let text = std::str::from_utf8(value).map_err(|_| "malformed Sec-WebSocket-Extensions")?;
        let extensions = parse_extensions(text).ok_or("malformed Sec-WebSocket-Extensions")?;
        for extension in extensions {
            if !extension.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE) || offer(config).is_none() {
                return Err("server accepted an extension that was not offered");
            }
            if agreed.is_some() {
                return Err("server accepted permessage-deflate twice");
            }
            let answer = params(&extension).ok_or("invalid permessage-deflate parameters")?;
            let client_bits = match answer.client_max_window_bits {
                Some(Some(bits)) => bits,
                Some(None) => return Err("client_max_window_bits without a value"),
                None => config.client_max_window_bits,
            };
            let server_bits = answer.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS);
            if config.server_max_window_bits < MAX_WINDOW_BITS
                && server_bits > config.server_max_window_bits
            {
                return Err("server_max_window_bits larger than offered");
            }
            if config.server_no_context_takeover && !answer.server_no_context_takeover {
                // The server declined the parameter; RFC 7692 section 7.1.1.1 leaves it to the
                // client whether to go on: the inflater copes either way.
                tracing::debug!("server kept its context takeover");
            }
            agreed = Some(PerMessageDeflate {
                server_no_context_takeover: answer.server_no_context_takeover,
                client_no_context_takeover: answer.client_no_context_takeover
                    || config.client_no_context_takeover,
                server_max_window_bits: server_bits,
                client_max_window_bits: client_bits
                    .min(config.client_max_window_bits)
                    .max(MIN_WINDOW_BITS),
            });
        }
    }
    Ok(agreed)
}

#[cfg(feature = "deflate")]
pub(crate) use codec::{Deflater, InflateError, Inflater};

#[cfg(feature = "deflate")]
mod codec {
    use bytes::BytesMut;
    use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

    /// The four bytes every sync flush ends with; RFC 7692 section 7.2.1 strips them on the wire
    /// and section 7.2.2 appends them again before inflating.
    const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

    /// Output is produced (and checked against the limit) at most this many bytes at a time, so
    /// a message that inflates past its limit is stopped with at most this much over it.
    const INFLATE_STEP: usize = 32 * 1024;

    /// One direction's decompressor, allocated at the first compressed message.
    pub(crate) struct Inflater {
        state: Option<Box<Decompress>>,
        window_bits: u8,
        no_context_takeover: bool,
    }

    /// Why inflating stopped.
    #[derive(Debug, PartialEq, Eq)]
    pub(crate) enum InflateError {
        /// The output would pass the message limit (close 1009).
        TooBig,
        /// Not a valid deflate stream (close 1007).
        Corrupt,
    }

    impl Inflater {
        pub(crate) fn new(window_bits: u8, no_context_takeover: bool) -> Self {
            Inflater {
                state: None,
                // An inflater with a larger window reads every smaller one; zlib needs 9 at least.
                window_bits: window_bits.max(super::MIN_WINDOW_BITS),
                no_context_takeover,
            }
        }

        /// Inflates `input` (one frame's payload) onto `out`, then the sync tail when `last`.
        /// `out` never grows past `limit + INFLATE_STEP` bytes; `grow` is asked before every
        /// step with the length `out` may reach, and may refuse (the memory budget).
        pub(crate) fn inflate(
            &mut self,
            input: &[u8],
            last: bool,
            out: &mut BytesMut,
            limit: usize,
            grow: &mut dyn FnMut(usize) -> bool,
        ) -> Result<(), InflateError> {
            let bits = self.window_bits;
            let state = self
                .state
                .get_or_insert_with(|| Box::new(Decompress::new_with_window_bits(false, bits)));
            Self::run(state, input, out, limit, grow)?;
            if last {
                Self::run(state, &SYNC_TAIL, out, limit, grow)?;
                if self.no_context_takeover {
                    state.reset(false);
                }
            }
            Ok(())
        }

        fn run(
            state: &mut Decompress,
            mut input: &[u8],
            out: &mut BytesMut,
            limit: usize,
            grow: &mut dyn FnMut(usize) -> bool,
        ) -> Result<(), InflateError> {
            loop {
                // One byte past the limit is enough to know the message is too big.
                let step = INFLATE_STEP.min(limit + 1 - out.len().min(limit)).max(64);
                let start = out.len();
                if !grow(start + step) {
                    return Err(InflateError::TooBig);
                }
                // flate2 writes into a slice: lend it zeroed room and keep what was produced.
                out.resize(start + step, 0);
                let before_in = state.total_in();
                let before_out = state.total_out();
                let status = state.decompress(input, &mut out[start..], FlushDecompress::Sync);
                let consumed = (state.total_in() - before_in) as usize;
                let produced = (state.total_out() - before_out) as usize;
                out.truncate(start + produced);
                input = &input[consumed..];
                match status {
                    Ok(Status::Ok | Status::BufError) => {}
                    // A block with BFINAL set ends the stream (RFC 7692 section 7.2.3.3 allows
                    // it); the next message starts a new one.
                    Ok(Status::StreamEnd) => {
                        state.reset(false);
                        return if out.len() > limit {
                            Err(InflateError::TooBig)
                        } else {
                            Ok(())
                        };
                    }
                    Err(_) => return Err(InflateError::Corrupt),
                }
                if out.len() > limit {
                    return Err(InflateError::TooBig);
                }
                if input.is_empty() && produced < step {
                    return Ok(());
                }
                if consumed == 0 && produced == 0 {
                    // No progress with input left and room to write: a broken stream.
                    return Err(InflateError::Corrupt);
                }
            }
        }

        /// Frees the state when nothing depends on it: no context takeover, between messages.
        pub(crate) fn idle(&mut self) {
            if self.no_context_takeover {
                self.state = None;
            }
        }
    }

    /// One direction's compressor, allocated at the first message over the threshold.
    pub(crate) struct Deflater {
        state: Option<Box<Compress>>,
        /// Reused output buffer; released with the state.
        scratch: Vec<u8>,
        window_bits: u8,
        no_context_takeover: bool,
    }

    impl Deflater {
        pub(crate) fn new(window_bits: u8, no_context_takeover: bool) -> Self {
            Deflater {
                state: None,
                scratch: Vec::new(),
                window_bits: window_bits.max(super::MIN_WINDOW_BITS),
                no_context_takeover,
            }
        }

        /// Compresses one whole message (RFC 7692 section 7.2.1): deflate, sync flush, drop the
        /// trailing `00 00 ff ff`. The result borrows the compressor's buffer until the next call.
        pub(crate) fn deflate(&mut self, input: &[u8]) -> &[u8] {
            let bits = self.window_bits;
            let state = self.state.get_or_insert_with(|| {
                Box::new(Compress::new_with_window_bits(
                    Compression::fast(),
                    false,
                    bits,
                ))
            });
            self.scratch.clear();
            let mut rest = input;
            loop {
                self.scratch.reserve((rest.len() / 2).max(256));
                let before_in = state.total_in();
                // A compressor that gets valid input and output room cannot fail.
                let _ = state.compress_vec(rest, &mut self.scratch, FlushCompress::Sync);
                rest = &rest[(state.total_in() - before_in) as usize..];
                if rest.is_empty() && self.scratch.len() < self.scratch.capacity() {
                    break;
                }
            }
            if self.scratch.ends_with(&SYNC_TAIL) {
                self.scratch.truncate(self.scratch.len() - SYNC_TAIL.len());
            }
            if self.no_context_takeover {
                state.reset();
            }
            &self.scratch
        }

        /// Frees what is not needed between messages: the output buffer always, the state too
        /// without context takeover.
        pub(crate) fn idle(&mut self) {
            if self.scratch.capacity() > 0 {
                self.scratch = Vec::new();
            }
            if self.no_context_takeover {
                self.state = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(offer: &str) -> Option<PerMessageDeflate> {
        negotiate(std::iter::once(offer.as_bytes()), &enabled())
    }

    fn enabled() -> DeflateConfig {
        DeflateConfig {
            enabled: true,
            ..DeflateConfig::default()
        }
    }

    #[test]
    fn grammar_of_section_9_1() {
        let parsed = parse_extensions(
            "permessage-deflate; client_max_window_bits, foo; a=1; b=\"x\\yz\", bar",
        )
        .expect("valid");
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0].params, vec![("client_max_window_bits", None)]);
        assert_eq!(
            parsed[1].params,
            vec![("a", Some("1".to_owned())), ("b", Some("xyz".to_owned()))]
        );
        for bad in [
            "",
            "permessage-deflate;",
            "a b",
            "x; y=",
            "x; y=\"a b\"",
            "x,,y",
            "x; =1",
        ] {
            assert!(parse_extensions(bad).is_none(), "{bad:?} should not parse");
        }
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn server_answers_every_parameter() {
        let plain = server("permessage-deflate").expect("accepted");
        assert_eq!(
            plain.to_string(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        let config = enabled()
            .server_no_context_takeover(false)
            .client_no_context_takeover(false);
        let takeover = negotiate(std::iter::once(&b"permessage-deflate"[..]), &config).unwrap();
        assert_eq!(takeover.to_string(), "permessage-deflate");
        let all = server(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=12",
        )
        .expect("accepted");
        assert!(all.server_no_context_takeover);
        assert!(all.client_no_context_takeover);
        assert_eq!(all.server_max_window_bits, 10);
        assert_eq!(all.client_max_window_bits, 12);
        assert_eq!(
            all.to_string(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=12"
        );
        // Without the setting, the client's own hint is not echoed.
        let hint = negotiate(
            std::iter::once(&b"permessage-deflate; client_no_context_takeover"[..]),
            &enabled().client_no_context_takeover(false),
        )
        .unwrap();
        assert!(!hint.client_no_context_takeover);
        // client_max_window_bits without a value lets the server choose.
        let config = enabled()
            .client_max_window_bits(11)
            .client_no_context_takeover(true);
        let chosen = negotiate(
            std::iter::once(&b"permessage-deflate; client_max_window_bits"[..]),
            &config,
        )
        .expect("accepted");
        assert_eq!(chosen.client_max_window_bits, 11);
        assert!(chosen.client_no_context_takeover);
        // Without client_max_window_bits in the offer the server must not limit the client.
        let config = enabled()
            .client_max_window_bits(11)
            .server_no_context_takeover(false)
            .client_no_context_takeover(false);
        let chosen = negotiate(std::iter::once(&b"permessage-deflate"[..]), &config).unwrap();
        assert_eq!(chosen.client_max_window_bits, 15);
        assert_eq!(chosen.to_string(), "permessage-deflate");
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn server_declines_bad_offers_and_takes_the_first_good_one() {
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; client_max_window_bits=20",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; unknown",
            "x-webkit-deflate-frame",
            "permessage-deflate; client_max_window_bits=\"1 0\"",
        ] {
            assert_eq!(server(bad), None, "{bad:?} should be declined");
        }
        let chosen = server(
            "permessage-deflate; server_max_window_bits=8, \
             permessage-deflate; server_max_window_bits=\"9\", permessage-deflate",
        )
        .expect("second offer");
        assert_eq!(chosen.server_max_window_bits, 9);
        let config = DeflateConfig::disabled();
        assert_eq!(
            negotiate(std::iter::once(&b"permessage-deflate"[..]), &config),
            None
        );
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn client_checks_the_answer() {
        let config = enabled();
        assert_eq!(
            offer(&config).as_deref(),
            Some(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 client_max_window_bits"
            )
        );
        let check = |answer: &str| accept_response(std::iter::once(answer.as_bytes()), &config);
        let agreed =
            check("permessage-deflate; client_max_window_bits=10; client_no_context_takeover")
                .expect("valid")
                .expect("agreed");
        assert_eq!(agreed.client_max_window_bits, 10);
        assert!(agreed.client_no_context_takeover);
        assert_eq!(accept_response(std::iter::empty(), &config), Ok(None));
        for bad in [
            "x-other",
            "permessage-deflate, permessage-deflate",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; bogus",
            "permessage-deflate; server_max_window_bits=99",
        ] {
            assert!(check(bad).is_err(), "{bad:?} must fail the handshake");
        }
        let narrow = enabled().server_max_window_bits(10);
        assert!(
            accept_response(
                std::iter::once(&b"permessage-deflate; server_max_window_bits=12"[..]),
                &narrow
            )
            .is_err()
        );
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn round_trip_with_and_without_context_takeover() {
        use bytes::BytesMut;
        for no_context_takeover in [false, true] {
            let mut deflater = Deflater::new(10, no_context_takeover);
            let mut inflater = Inflater::new(10, no_context_takeover);
            let text = b"{\"user\":\"ada\",\"text\":\"hello hello hello hello\"}".repeat(20);
            for _ in 0..3 {
                let compressed = deflater.deflate(&text).to_vec();
                assert!(compressed.len() < text.len() / 4);
                let mut out = BytesMut::new();
                inflater
                    .inflate(&compressed, true, &mut out, 1 << 20, &mut |_| true)
                    .expect("inflates");
                assert_eq!(&out[..], &text[..]);
                deflater.idle();
                inflater.idle();
            }
        }
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn inflating_stops_at_the_limit() {
        use bytes::BytesMut;
        let mut deflater = Deflater::new(15, false);
        let bomb = deflater.deflate(&vec![0u8; 4 << 20]).to_vec();
        assert!(
            bomb.len() < 64 * 1024,
            "4 MiB of zeros compress to {}",
            bomb.len()
        );
        let mut inflater = Inflater::new(15, false);
        let mut out = BytesMut::new();
        let limit = 64 * 1024;
        assert_eq!(
            inflater.inflate(&bomb, true, &mut out, limit, &mut |_| true),
            Err(InflateError::TooBig)
        );
        assert!(
            out.capacity() <= limit + 2 * 32 * 1024,
            "held {}",
            out.capacity()
        );
        let mut inflater = Inflater::new(15, false);
        assert_eq!(
            inflater.inflate(
                b"\xff\xff\xff\xff",
                true,
                &mut BytesMut::new(),
                limit,
                &mut |_| true
            ),
            Err(InflateError::Corrupt)
        );
    }
}
