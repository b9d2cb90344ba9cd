//! Bank files as requests carry them, and the options beside them.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Query, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::{self, Visitor};

use super::error::ApiError;

/// [`FILE_BODY_LIMIT`] as a 413 names it.
const FILE_LIMIT_TEXT: &str = "64 MiB";

/// A bank file sent as the whole body, or as the file part of a multipart
/// form with the query's fields as text parts beside it.
pub struct Upload {
    pub bytes: Bytes,
    /// The query string with the form's text fields added (they win).
    pub query: String,
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

pub async fn upload(req: Request, accepted: &[&str]) -> Result<Upload, ApiError> {
    let media = media_type(req.headers());
    let query = req.uri().query().unwrap_or("").to_owned();
    if media == "multipart/form-data" {
        let mut form = Multipart::from_request(req, &()).await.map_err(|e| {
            ApiError::BadRequest(format!("cannot read the form: {}", e.body_text()))
        })?;
        let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let mut file = None;
        loop {
            let Some(field) = form.next_field().await.map_err(form_error)? else {
                break;
            };
            let name = field.name().unwrap_or("").to_owned();
            let is_file = field.file_name().is_some() || name == "file";
            let data = field.bytes().await.map_err(form_error)?;
            if is_file {
                file = Some(data);
            } else {
                let value = String::from_utf8_lossy(&data).into_owned();
                pairs.retain(|(k, _)| *k != name);
                pairs.push((name, value));
            }
        }
        let bytes = file.ok_or_else(|| ApiError::field("file", "the form has no file part"))?;
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        return Ok(Upload { bytes, query });
    }
    if !accepted.contains(&media.as_str()) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes = Bytes::from_request(req, &()).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(FILE_LIMIT_TEXT)
        } else {
            ApiError::BadRequest(format!("cannot read request body: {}", e.body_text()))
        }
    })?;
    Ok(Upload { bytes, query })
}

/// A form that cannot be read: too large (413), or malformed (400).
fn form_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(FILE_LIMIT_TEXT)
    } else {
        ApiError::BadRequest(format!("cannot read the form: {}", e.body_text()))
    }
}

/// The query (with a form's fields) as `T`. An option `T` does not have, or
/// one given twice, is a 422 naming it (and the option meant, when one is
/// near); a malformed value is a 400.
pub fn options<T: serde::de::DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    check_names(query, fields::<T>())?;
    let uri: axum::http::Uri = format!("/?{query}")
        .parse()
        .map_err(|_| ApiError::BadRequest("invalid query string".into()))?;
    Query::<T>::try_from_uri(&uri)
        .map(|Query(q)| q)
        .map_err(|e| ApiError::BadRequest(format!("invalid query string: {}", e.body_text())))
}

/// A `multipart/form-data` upload: the file, and optionally the query's fields as text parts.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Read part by part from the form; this type only documents it.
pub struct FileUpload {
    /// The bank file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Refuses names that are not options, and options given twice.
pub fn check_names(query: &str, known: &[&str]) -> Result<(), ApiError> {
    let mut seen: Vec<String> = Vec::new();
    let mut fields = BTreeMap::new();
    for (name, _) in url::form_urlencoded::parse(query.as_bytes()) {
        let name = name.into_owned();
        if seen.contains(&name) {
            fields.insert(name.clone(), "is given twice: give it once".to_owned());
        } else if !known.contains(&name.as_str()) {
            let why = match nearest(&name, known) {
                Some(near) => format!("is not an option: did you mean {near}?"),
                None => format!("is not an option: the options are {}", known.join(", ")),
            };
            fields.insert(name.clone(), why);
        }
        seen.push(name);
    }
    match fields.is_empty() {
        true => Ok(()),
        false => Err(ApiError::Validation(fields)),
    }
}

/// The option `name` is most likely a misspelling of, if one is near.
pub fn nearest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(name, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min()
        .map(|(_, k)| k)
}

/// The names of a struct's fields as serde reads them.
pub fn fields<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    let mut names = Names(&[]);
    let _ = T::deserialize(&mut names);
    names.0
}

/// A deserializer that only notes the fields a struct asks for.
struct Names(&'static [&'static str]);

impl<'de> de::Deserializer<'de> for &mut Names {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only a struct's field names are read"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = fields;
        self.deserialize_any(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
        enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_known_by_their_serde_names() {
        let names = fields::<finance_shared::CsvImportQuery>();
        assert!(names.contains(&"date_format") && names.contains(&"async"));
        assert_eq!(nearest("date_fmt", names), Some("date_format"));
        assert_eq!(nearest("zzzzzzzz", names), None);
        assert!(check_names("date=a&date=b", names).is_err());
        assert!(check_names("date=a&amount=b", names).is_ok());
    }
}
