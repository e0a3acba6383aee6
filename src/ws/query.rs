//! The upgrade request's query string, decoded: `?room=lobby&nick=ann%20b` as pairs, one value, or
//! (feature `json`) a `serde` type.
//!
//! ```
//! use wsgrpc::ws::{Handler, Rejection, Session, Upgrade};
//!
//! struct Chat;
//!
//! impl Handler for Chat {
//!     async fn on_upgrade(&self, upgrade: &mut Upgrade) -> Result<(), Rejection> {
//!         // `?token=a+b%21` reads as "a b!".
//!         let token = upgrade.query_param("token");
//!         let _ = token;
//!         Ok(())
//!     }
//!
//!     async fn on_open(&self, session: &mut Session) -> wsgrpc::Result<()> {
//!         let nick = session.query_param("nick").unwrap_or("guest".into()).into_owned();
//!         session.send(format!("hello {nick}")).await
//!     }
//! }
//! ```
//!
//! Query strings are `application/x-www-form-urlencoded` as browsers send them (WHATWG URL
//! standard, "application/x-www-form-urlencoded parsing"): `&` separates pairs, `+` is a space,
//! `%XX` is a byte. Decoding is [`form_urlencoded`]'s; typed decoding is `serde_urlencoded`'s, the
//! one axum's `Query` extractor uses, so a query reads the same here as in an axum handler.
//! Bytes that do not form UTF-8 become U+FFFD rather than an error, as in both crates.

use std::borrow::Cow;

use crate::ws::{Session, Upgrade};

/// Every `name=value` pair of `query`, decoded, in order; a pair without `=` has an empty value.
fn pairs(query: Option<&str>) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
}

/// The decoded value of the first pair named `name`.
fn param<'q>(query: Option<&'q str>, name: &str) -> Option<Cow<'q, str>> {
    pairs(query).find_map(|(key, value)| (key == name).then_some(value))
}

/// `query` deserialized into `T`; a missing query reads as an empty one.
#[cfg(feature = "json")]
fn typed<T: serde::de::DeserializeOwned>(
    query: Option<&str>,
) -> Result<T, serde_urlencoded::de::Error> {
    serde_urlencoded::from_str(query.unwrap_or_default())
}

impl Upgrade {
    /// The query string's `(name, value)` pairs, decoded (`+` and `%20` are spaces), in the order
    /// they were sent. Empty when there is no query.
    pub fn query_pairs(&self) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
        pairs(self.query())
    }

    /// The decoded value of the first query parameter named `name`, or `None` when there is none
    /// (`?name` and `?name=` give `Some("")`). Borrowed unless decoding changed something.
    pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        param(self.query(), name)
    }

    /// The query string deserialized into `T` with `serde_urlencoded` (as axum's `Query`); no
    /// query reads as an empty one, so optional fields are `None`.
    ///
    /// # Errors
    ///
    /// A [`Rejection`](crate::ws::Rejection) with **400 Bad Request** and a plain-text body
    /// `invalid query string: ...` naming the problem (a missing field, a value that does not
    /// parse as the field's type), ready to return from
    /// [`on_upgrade`](crate::ws::Handler::on_upgrade) with `?`.
    ///
    /// ```
    /// use serde::Deserialize;
    /// use wsgrpc::ws::{Handler, Rejection, Upgrade};
    ///
    /// #[derive(Deserialize)]
    /// struct Join {
    ///     room: String,
    ///     since: Option<u64>,
    /// }
    ///
    /// struct Rooms;
    ///
    /// impl Handler for Rooms {
    ///     async fn on_upgrade(&self, upgrade: &mut Upgrade) -> Result<(), Rejection> {
    ///         let join: Join = upgrade.query_as()?; // `?room=lobby&since=7`, or 400
    ///         upgrade.extensions_mut().insert(join.room);
    ///         Ok(())
    ///     }
    /// }
    /// ```
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn query_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::ws::Rejection> {
        typed(self.query()).map_err(|error| {
            crate::ws::Rejection::new(
                http::StatusCode::BAD_REQUEST,
                format!("invalid query string: {error}\n"),
            )
        })
    }
}

impl Session {
    /// The upgrade request's query pairs, decoded; see [`Upgrade::query_pairs`].
    pub fn query_pairs(&self) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
        pairs(self.query())
    }

    /// The decoded value of the upgrade request's first query parameter named `name`; see
    /// [`Upgrade::query_param`].
    pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        param(self.query(), name)
    }

    /// The upgrade request's query string deserialized into `T` with `serde_urlencoded`; no query
    /// reads as an empty one.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidQuery`](crate::Error::InvalidQuery) naming the problem. Returned from a
    /// hook, it closes the connection with **1008** (policy violation). To answer a bad query
    /// with an HTTP `400` before the connection opens, decode it in `on_upgrade` with
    /// [`Upgrade::query_as`] instead.
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn query_as<T: serde::de::DeserializeOwned>(&self) -> crate::Result<T> {
        typed(self.query()).map_err(crate::Error::InvalidQuery)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_form_decoded_in_order() {
        let decoded: Vec<(String, String)> = pairs(Some("a=1&b=x+y%21&flag&c=%E2%82%AC&a=2"))
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        let expected = [
            ("a", "1"),
            ("b", "x y!"),
            ("flag", ""),
            ("c", "€"),
            ("a", "2"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()));
        assert_eq!(decoded, expected);
        assert_eq!(pairs(None).count(), 0);
    }

    #[test]
    fn param_is_the_first_of_its_name_and_borrows_when_it_can() {
        let query = Some("nick=ann&nick=bob&token=a%2Bb");
        assert!(matches!(param(query, "nick"), Some(Cow::Borrowed("ann"))));
        assert_eq!(param(query, "token").as_deref(), Some("a+b"));
        assert_eq!(param(query, "missing"), None);
        assert_eq!(param(None, "nick"), None);
        // Invalid UTF-8 is replaced, not refused.
        assert_eq!(param(Some("x=%FF"), "x").as_deref(), Some("\u{FFFD}"));
    }

    #[cfg(feature = "json")]
    #[test]
    fn typed_query_reads_fields_and_names_what_is_wrong() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Join {
            room: String,
            since: Option<u64>,
        }
        let join: Join = typed(Some("room=the+lobby&since=7")).expect("valid");
        assert_eq!(
            join,
            Join {
                room: "the lobby".to_owned(),
                since: Some(7)
            }
        );
        let missing = typed::<Join>(None).expect_err("room is required");
        assert!(missing.to_string().contains("room"), "{missing}");
        let not_a_number = typed::<Join>(Some("room=a&since=soon")).expect_err("since is a u64");
        assert!(
            not_a_number.to_string().contains("invalid digit"),
            "{not_a_number}"
        );
    }
}
