//! Query strings the way ShipStation's ASP.NET binder reads them: parameter names are
//! case-insensitive (`storeID` and `storeId` are one), values are URL-decoded, and a
//! value that does not parse is a 400 naming the parameter.

use std::collections::HashMap;

use jiff::Timestamp;
use shipledger_core::time::pacific::{Bound, parse_v1_query_bound};

use crate::error::V1Error;

#[derive(Debug, Default, Clone)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let mut map = HashMap::new();
        if let Some(raw) = raw {
            for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
                map.insert(k.to_ascii_lowercase(), v.into_owned());
            }
        }
        Query(map)
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(&name.to_ascii_lowercase()).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn i64(&self, name: &str) -> Result<Option<i64>, V1Error> {
        self.str(name)
            .map(|v| {
                v.parse::<i64>().map_err(|_| V1Error::Invalid {
                    field: name.to_string(),
                    message: format!("The value '{v}' is not valid for {name}."),
                })
            })
            .transpose()
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, V1Error> {
        self.str(name)
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(V1Error::Invalid {
                    field: name.to_string(),
                    message: format!("The value '{v}' is not valid for {name}."),
                }),
            })
            .transpose()
    }

    /// A Pacific date-time bound (`2016-11-29 23:59:59`).
    pub fn time(&self, name: &str, bound: Bound) -> Result<Option<Timestamp>, V1Error> {
        self.str(name)
            .map(|v| {
                parse_v1_query_bound(v, bound).map_err(|e| V1Error::Invalid {
                    field: name.to_string(),
                    message: format!("The value '{v}' is not valid for {name}: {e}"),
                })
            })
            .transpose()
    }

    /// `page` and `pageSize` (default 1 and 100; pageSize at most 500).
    pub fn paging(&self) -> Result<(usize, usize), V1Error> {
        let page = self.i64("page")?.unwrap_or(1);
        let size = self.i64("pageSize")?.unwrap_or(100);
        if page < 1 {
            return Err(V1Error::Invalid { field: "page".into(), message: "page must be 1 or more.".into() });
        }
        if !(1..=500).contains(&size) {
            return Err(V1Error::Invalid {
                field: "pageSize".into(),
                message: format!("pageSize must be between 1 and 500; got {size}."),
            });
        }
        Ok((page as usize, size as usize))
    }

    /// `sortDir`: ascending unless `DESC`.
    pub fn descending(&self) -> bool {
        self.str("sortDir").is_some_and(|d| d.eq_ignore_ascii_case("desc"))
    }
}

/// One page of a list, and the `total` and `pages` ShipStation reports with it.
pub fn page_of<T: Clone>(items: &[T], page: usize, size: usize) -> (Vec<T>, usize, usize) {
    let total = items.len();
    let pages = total.div_ceil(size);
    let start = (page - 1).saturating_mul(size).min(total);
    let end = (start + size).min(total);
    (items[start..end].to_vec(), total, pages)
}
