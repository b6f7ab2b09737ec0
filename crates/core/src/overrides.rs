//! What an operator may correct on an order in shipledger itself ("edit and retry"):
//! only the ShipStation-side fields shipledger owns and sets on the orders it pushes
//! (carrier, service, package, delivery confirmation, the warehouse's ship-from
//! location, internal notes). The ERP's business data (weights, addresses, lines,
//! prices) is never overridden here: it is corrected in the ERP, which shipledger
//! reads again.

/// The fields an override may set, by the name the CLI and the API take.
pub const FIELDS: &[&str] = &["carrier_code", "service_code", "package_code", "confirmation", "warehouse_id", "internal_notes"];

/// ShipStation's delivery confirmation values.
pub const CONFIRMATIONS: &[&str] = &["none", "delivery", "signature", "adult_signature", "direct_signature"];

/// The ERP's fields people most often try to correct here, and where to do it.
const ERP_FIELDS: &[(&str, &str)] = &[
    ("weight", "a product's weight is the ERP's: correct it on the product in the ERP; shipledger reads the order again and releases it"),
    ("ship_to", "the shipping address is the ERP's: correct it on the order in the ERP"),
    ("address", "the shipping address is the ERP's: correct it on the order in the ERP"),
    ("sku", "order lines are the ERP's: correct them in the ERP"),
    ("quantity", "order lines are the ERP's: correct them in the ERP"),
    ("price", "prices are the ERP's: correct them in the ERP"),
];

/// Whether `field` may be set to `value` (`None`: the override removed); the refusal
/// says why and what to do instead.
pub fn check(field: &str, value: Option<&str>) -> Result<(), String> {
    if let Some((_, why)) = ERP_FIELDS.iter().find(|(f, _)| field == *f || field.starts_with(&format!("{f}_"))) {
        return Err(format!("{field}: {why}"));
    }
    if !FIELDS.contains(&field) {
        return Err(format!("{field}: not a field shipledger owns on a ShipStation order; it may set {}", FIELDS.join(", ")));
    }
    let Some(value) = value else { return Ok(()) };
    let value = value.trim();
    if value.is_empty() {
        return Err(format!("{field}: give a value (or remove the override)"));
    }
    match field {
        "confirmation" if !CONFIRMATIONS.contains(&value) => Err(format!("confirmation: {value:?} is not one of {}", CONFIRMATIONS.join(", "))),
        "warehouse_id" if value.parse::<i64>().map_or(true, |n| n <= 0) => {
            Err(format!("warehouse_id: {value:?} is not a ShipStation warehouse id (a positive number)"))
        }
        "internal_notes" if value.chars().count() > 1000 => Err("internal_notes: at most 1000 characters".into()),
        "carrier_code" | "service_code" | "package_code" if value.len() > 50 || value.contains(char::is_whitespace) => {
            Err(format!("{field}: {value:?} is not a ShipStation code (no spaces, at most 50 characters)"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_shipstation_fields_shipledger_owns_may_be_overridden_and_the_erps_are_sent_back_to_the_erp() {
        assert!(check("service_code", Some("ups_ground")).is_ok());
        assert!(check("confirmation", Some("signature")).is_ok());
        assert!(check("warehouse_id", Some("41")).is_ok());
        assert!(check("package_code", None).is_ok(), "an override may be removed");
        let weight = check("weight", Some("100")).unwrap_err();
        assert!(weight.contains("correct it on the product in the ERP"), "{weight}");
        assert!(check("weight_grams", Some("100")).unwrap_err().contains("ERP"));
        assert!(check("ship_to", Some("x")).unwrap_err().contains("address is the ERP's"));
        assert!(check("colour", Some("red")).unwrap_err().contains("service_code"), "names what it may set");
        assert!(check("confirmation", Some("maybe")).unwrap_err().contains("adult_signature"));
        assert!(check("warehouse_id", Some("-3")).is_err());
        assert!(check("service_code", Some("ups ground")).is_err());
        assert!(check("carrier_code", Some("  ")).is_err());
    }
}
