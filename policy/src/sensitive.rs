//! Sensitive-field classification from schema metadata alone: a column's
//! name, its table's name and its type — never a value.
//!
//! The conservative result wins. A column is sensitive when any rule says
//! so; every rule that matches is reported with its reason, and a type only
//! clears a column when it cannot hold the value the name suggests (a
//! boolean `email_verified` holds no email address, a timestamp
//! `password_changed_at` no password). Health data and dates of birth are
//! never cleared by type. Names that may hold anything a person typed
//! (`notes`, `comment`, `description`, …) and JSON/XML/array columns are
//! sensitive too: nothing says what is in them.

use serde::{Deserialize, Serialize};

use crate::column_type::{TypeFamily, type_family};
use crate::schema_info::SchemaInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    PersonName,
    Email,
    Phone,
    PostalAddress,
    DateOfBirth,
    GovernmentId,
    Payment,
    Credential,
    Health,
    /// IP addresses, device ids, precise location.
    OnlineIdentifier,
    /// Free text or nested data: what it holds is not known from the schema.
    FreeText,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::PersonName => "person_name",
            Category::Email => "email",
            Category::Phone => "phone",
            Category::PostalAddress => "postal_address",
            Category::DateOfBirth => "date_of_birth",
            Category::GovernmentId => "government_id",
            Category::Payment => "payment",
            Category::Credential => "credential",
            Category::Health => "health",
            Category::OnlineIdentifier => "online_identifier",
            Category::FreeText => "free_text",
        }
    }

    /// Whether the column's type alone can clear it: a boolean or a
    /// timestamp holds a flag or an instant, not a name, number or secret.
    /// Health data (a boolean `has_diabetes` is health data) and dates of
    /// birth are never cleared by type.
    fn cleared_by(self, family: TypeFamily) -> bool {
        let flag_or_instant = matches!(
            family,
            TypeFamily::Boolean | TypeFamily::Timestamp | TypeFamily::Time
        );
        flag_or_instant && !matches!(self, Category::Health | Category::DateOfBirth)
    }
}

/// Why one column is sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    pub category: Category,
    pub reason: String,
}

/// A sensitive column of a schema, with every reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensitiveColumn {
    pub table: String,
    pub column: String,
    pub data_type: String,
    pub findings: Vec<Finding>,
}

/// How a rule recognizes a name.
#[derive(Clone, Copy)]
enum Pattern {
    /// One word of the name is exactly this (`ssn` in `ssn_last4`).
    Word(&'static str),
    /// The name's words run together contain this (`dateofbirth` in
    /// `DateOfBirth`, `date_of_birth`, `dateofbirth`).
    Joined(&'static str),
}

struct Rule {
    category: Category,
    what: &'static str,
    patterns: &'static [Pattern],
}

use Pattern::{Joined, Word};

const RULES: &[Rule] = &[
    Rule {
        category: Category::PersonName,
        what: "a person's name",
        patterns: &[
            Joined("firstname"),
            Joined("lastname"),
            Joined("givenname"),
            Joined("familyname"),
            Joined("fullname"),
            Joined("surname"),
            Joined("middlename"),
            Joined("maidenname"),
            Joined("legalname"),
            Joined("displayname"),
            Joined("nickname"),
            Joined("preferredname"),
            Joined("birthname"),
            Joined("cardholdername"),
        ],
    },
    Rule {
        category: Category::Email,
        what: "an email address",
        patterns: &[Joined("email"), Word("mail")],
    },
    Rule {
        category: Category::Phone,
        what: "a phone number",
        patterns: &[
            Joined("phone"),
            Word("mobile"),
            Word("cell"),
            Word("fax"),
            Word("msisdn"),
            Word("tel"),
        ],
    },
    Rule {
        category: Category::DateOfBirth,
        what: "a date of birth",
        patterns: &[Word("dob"), Joined("birth")],
    },
    Rule {
        category: Category::GovernmentId,
        what: "a government-issued or tax identifier",
        patterns: &[
            Word("ssn"),
            Word("nin"),
            Word("nino"),
            Word("tin"),
            Word("itin"),
            Word("ein"),
            Joined("socialsecurity"),
            Joined("nationalinsurance"),
            Joined("nationalid"),
            Joined("passport"),
            Joined("driverslicense"),
            Joined("driverlicense"),
            Joined("drivinglicense"),
            Joined("driverslicence"),
            Joined("driverlicence"),
            Joined("drivinglicence"),
            Joined("taxid"),
            Joined("taxnumber"),
            Joined("taxpayer"),
            Joined("vatnumber"),
            Joined("vatid"),
            Joined("governmentid"),
            Joined("idnumber"),
            Joined("aadhaar"),
        ],
    },
    Rule {
        category: Category::Payment,
        what: "payment card or bank account data",
        patterns: &[
            Word("pan"),
            Word("cvv"),
            Word("cvc"),
            Word("cvv2"),
            Word("iban"),
            Word("bic"),
            Word("swift"),
            Word("card"),
            Joined("cardnumber"),
            Joined("creditcard"),
            Joined("debitcard"),
            Joined("ccnumber"),
            Joined("ccnum"),
            Joined("bankaccount"),
            Joined("accountnumber"),
            Joined("routingnumber"),
            Joined("sortcode"),
            Joined("cardholder"),
        ],
    },
    Rule {
        category: Category::Credential,
        what: "a credential, secret or token",
        patterns: &[
            Joined("password"),
            Word("pwd"),
            Word("passwd"),
            Word("secret"),
            Word("secrets"),
            Word("token"),
            Word("tokens"),
            Word("hash"),
            Word("hashed"),
            Word("salt"),
            Word("otp"),
            Word("totp"),
            Word("pin"),
            Word("cookie"),
            Joined("passphrase"),
            Joined("passcode"),
            Joined("credential"),
            Joined("apikey"),
            Joined("accesskey"),
            Joined("secretkey"),
            Joined("privatekey"),
            Joined("signingkey"),
            Joined("sessionkey"),
            Joined("authkey"),
            Joined("recoverycode"),
        ],
    },
    Rule {
        category: Category::Health,
        what: "health data",
        patterns: &[
            Word("icd"),
            Word("icd10"),
            Word("mrn"),
            Word("nhs"),
            Joined("diagnos"),
            Joined("medical"),
            Joined("medication"),
            Joined("prescription"),
            Joined("allerg"),
            Joined("clinical"),
            Joined("symptom"),
            Joined("treatment"),
            Joined("disabilit"),
            Joined("pregnan"),
            Joined("bloodtype"),
            Joined("bloodgroup"),
            Joined("health"),
        ],
    },
    Rule {
        category: Category::OnlineIdentifier,
        what: "an IP address, device id or precise location",
        patterns: &[
            Word("ip"),
            Word("ipv4"),
            Word("ipv6"),
            Word("lat"),
            Word("lng"),
            Joined("ipaddress"),
            Joined("useragent"),
            Joined("deviceid"),
            Joined("latitude"),
            Joined("longitude"),
            Joined("geolocation"),
        ],
    },
];

/// Words that make an `address` a postal one only when no word says it is
/// another kind (`ip_address`, `email_address`, `wallet_address`).
const POSTAL: &[Pattern] = &[
    Word("address"),
    Word("addr"),
    Word("street"),
    Word("postcode"),
    Word("postal"),
    Word("zip"),
    Word("zipcode"),
    Word("city"),
    Joined("addressline"),
    Joined("postalcode"),
];
const NOT_POSTAL: &[&str] = &[
    "ip", "ipv4", "ipv6", "mac", "email", "mail", "wallet", "web", "url",
];

/// Words that, with `name`, make it a person's name (`customer_name`).
const PERSON_WORDS: &[&str] = &[
    "customer",
    "contact",
    "user",
    "member",
    "employee",
    "patient",
    "holder",
    "owner",
    "recipient",
    "guardian",
    "parent",
    "student",
    "author",
    "signer",
    "billing",
    "shipping",
    "emergency",
    "beneficiary",
    "applicant",
    "candidate",
    "passenger",
    "guest",
    "client",
    "buyer",
    "seller",
    "subscriber",
    "lead",
    "staff",
    "person",
    "people",
];

/// Free text: a person may have typed anything into it.
const FREE_TEXT_WORDS: &[&str] = &[
    "note",
    "notes",
    "comment",
    "comments",
    "description",
    "memo",
    "message",
    "messages",
    "body",
    "content",
    "remarks",
    "bio",
    "feedback",
    "freeform",
    "transcript",
];

/// The words of an identifier, lower-cased: split at every character that
/// is not an ASCII letter or digit and at camel-case boundaries
/// (`homeAddressLine1` → `home`, `address`, `line1`; `SSNLast4` → `ssn`,
/// `last4`).
pub fn words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut out = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            flush(&mut current, &mut out);
            continue;
        }
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            let boundary = prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower);
            if boundary {
                flush(&mut current, &mut out);
            }
        }
        current.push(c.to_ascii_lowercase());
    }
    flush(&mut current, &mut out);
    out
}

fn flush(current: &mut String, out: &mut Vec<String>) {
    if !current.is_empty() {
        out.push(std::mem::take(current));
    }
}

/// The first pattern that recognizes the name, as it is spelled in the
/// reason.
fn first_match(patterns: &[Pattern], words: &[String], joined: &str) -> Option<&'static str> {
    patterns.iter().find_map(|p| match *p {
        Word(w) => words.iter().any(|x| x == w).then_some(w),
        Joined(j) => joined.contains(j).then_some(j),
    })
}

fn finding(category: Category, reason: String) -> Finding {
    Finding { category, reason }
}

/// Every reason `column` (of `table`, with catalog type `data_type`) is
/// sensitive; empty when none is. Sorted by category.
pub fn classify(table: &str, column: &str, data_type: &str) -> Vec<Finding> {
    let words = words(column);
    let joined: String = words.concat();
    let family = type_family(data_type);
    let mut found = Vec::new();
    for rule in RULES {
        if let Some(m) = first_match(rule.patterns, &words, &joined) {
            found.push(finding(
                rule.category,
                format!("the name contains \"{m}\": {}", rule.what),
            ));
        }
    }
    if let Some(m) = first_match(POSTAL, &words, &joined)
        && !words.iter().any(|w| NOT_POSTAL.contains(&w.as_str()))
    {
        found.push(finding(
            Category::PostalAddress,
            format!("the name contains \"{m}\": part of a postal address"),
        ));
    }
    if let Some(reason) = person_name(table, &words) {
        found.push(finding(Category::PersonName, reason));
    }
    if let Some(w) = words.iter().find(|w| FREE_TEXT_WORDS.contains(&w.as_str()))
        && matches!(
            family,
            TypeFamily::Text | TypeFamily::Structured | TypeFamily::Other
        )
    {
        found.push(finding(
            Category::FreeText,
            format!("the name contains \"{w}\": free text may hold anything a person typed"),
        ));
    }
    if family == TypeFamily::Structured {
        found.push(finding(
            Category::FreeText,
            format!("its type `{data_type}` holds nested data of any shape"),
        ));
    }
    found.retain(|f| !f.category.cleared_by(family));
    found.sort_by_key(|f| f.category);
    found
}

/// `name` with a word saying whose (`customer_name`, `contact_name`), or a
/// bare `name` on a table of people (`users.name`).
fn person_name(table: &str, words: &[String]) -> Option<String> {
    if !words.iter().any(|w| w == "name") {
        return None;
    }
    if let Some(w) = words.iter().find(|w| PERSON_WORDS.contains(&w.as_str())) {
        return Some(format!("\"name\" with \"{w}\": a person's name"));
    }
    let bare = words.len() == 1;
    let people = words_of_people(table);
    (bare && people).then(|| format!("\"name\" on `{table}`, a table of people"))
}

/// Whether a table's name says its rows are people (`users`, `Customer`,
/// `crm_contacts`, `people`).
fn words_of_people(table: &str) -> bool {
    words(table).iter().any(|w| {
        let singular = w.strip_suffix('s').unwrap_or(w);
        PERSON_WORDS.contains(&singular)
    })
}

/// Every sensitive column of a schema, in table order then column order.
pub fn sensitive_columns(schema: &SchemaInfo) -> Vec<SensitiveColumn> {
    let mut out = Vec::new();
    for t in &schema.tables {
        for c in &t.columns {
            let findings = classify(&t.name, &c.name, &c.data_type);
            if !findings.is_empty() {
                out.push(SensitiveColumn {
                    table: t.name.clone(),
                    column: c.name.clone(),
                    data_type: c.data_type.clone(),
                    findings,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identifier::Engine;
    use crate::schema_info::{ColumnInfo, TableInfo, TableKind};
    use proptest::prelude::*;

    fn cats(table: &str, column: &str, ty: &str) -> Vec<Category> {
        classify(table, column, ty)
            .into_iter()
            .map(|f| f.category)
            .collect()
    }

    #[test]
    fn identifiers_split_into_lower_case_words() {
        for (name, want) in [
            ("homeAddressLine1", &["home", "address", "line1"][..]),
            ("SSNLast4", &["ssn", "last4"]),
            ("ssn_last4", &["ssn", "last4"]),
            ("Line1Street", &["line1", "street"]),
            ("fooBAR", &["foo", "bar"]),
            ("FIRST_NAME", &["first", "name"]),
            ("api-token.hash", &["api", "token", "hash"]),
            ("HTTPServer", &["http", "server"]),
            ("x", &["x"]),
            ("ABC", &["abc"]),
            ("__a__b__", &["a", "b"]),
            ("", &[]),
            ("é_mail", &["mail"]),
        ] {
            assert_eq!(words(name), want, "{name}");
        }
    }

    #[test]
    fn each_category_is_recognized_with_its_reason() {
        let one = |column: &str, ty: &str| {
            let f = classify("accounts", column, ty);
            assert_eq!(f.len(), 1, "{column}: {f:?}");
            f.into_iter().next().unwrap()
        };
        let f = one("given_name", "text");
        assert_eq!(f.category, Category::PersonName);
        assert_eq!(f.reason, "the name contains \"givenname\": a person's name");
        let f = one("ssn_last4", "char(4)");
        assert_eq!(f.category, Category::GovernmentId);
        assert_eq!(
            f.reason,
            "the name contains \"ssn\": a government-issued or tax identifier"
        );
        let f = one("home_address_line1", "varchar(200)");
        assert_eq!(f.category, Category::PostalAddress);
        assert_eq!(
            f.reason,
            "the name contains \"address\": part of a postal address"
        );
        let f = one("iban", "text");
        assert_eq!(f.category, Category::Payment);
        assert_eq!(
            f.reason,
            "the name contains \"iban\": payment card or bank account data"
        );
        let f = one("dob", "date");
        assert_eq!(f.category, Category::DateOfBirth);
        assert_eq!(f.reason, "the name contains \"dob\": a date of birth");
        let f = one("diagnosis_code", "varchar(10)");
        assert_eq!(f.category, Category::Health);
        assert_eq!(f.reason, "the name contains \"diagnos\": health data");
        let f = one("notes", "text");
        assert_eq!(f.category, Category::FreeText);
        assert_eq!(
            f.reason,
            "the name contains \"notes\": free text may hold anything a person typed"
        );
        let f = one("settings", "jsonb");
        assert_eq!(f.category, Category::FreeText);
        assert_eq!(f.reason, "its type `jsonb` holds nested data of any shape");
        let f = one("last_login_ip", "inet");
        assert_eq!(f.category, Category::OnlineIdentifier);
        let f = one("contact_email", "text");
        assert_eq!(f.category, Category::Email);
        assert_eq!(f.reason, "the name contains \"email\": an email address");
        let f = one("mobile", "text");
        assert_eq!(f.category, Category::Phone);
        let f = one("password_digest", "text");
        assert_eq!(f.category, Category::Credential);
        assert_eq!(
            f.reason,
            "the name contains \"password\": a credential, secret or token"
        );
    }

    #[test]
    fn the_planted_names_are_all_sensitive() {
        for (column, ty, cat) in [
            ("dob", "date", Category::DateOfBirth),
            ("date_of_birth", "date", Category::DateOfBirth),
            ("birthDate", "timestamp", Category::DateOfBirth),
            ("ssn_last4", "text", Category::GovernmentId),
            ("nin", "text", Category::GovernmentId),
            ("passport_no", "text", Category::GovernmentId),
            ("tax_id", "text", Category::GovernmentId),
            ("drivers_license", "text", Category::GovernmentId),
            ("driving_licence_number", "text", Category::GovernmentId),
            ("national_insurance_number", "text", Category::GovernmentId),
            ("iban", "text", Category::Payment),
            ("card_pan", "text", Category::Payment),
            ("card_number", "bigint", Category::Payment),
            ("cvv", "char(3)", Category::Payment),
            ("bank_account_number", "text", Category::Payment),
            ("api_token_hash", "text", Category::Credential),
            ("api_key", "text", Category::Credential),
            ("client_secret", "text", Category::Credential),
            ("refresh_token", "text", Category::Credential),
            ("passwd", "text", Category::Credential),
            ("diagnosis_code", "text", Category::Health),
            ("medication", "text", Category::Health),
            ("has_allergies", "boolean", Category::Health),
            ("home_address_line1", "text", Category::PostalAddress),
            ("postal_code", "text", Category::PostalAddress),
            ("zip", "text", Category::PostalAddress),
            ("given_name", "text", Category::PersonName),
            ("family_name", "text", Category::PersonName),
            ("FirstName", "text", Category::PersonName),
            ("customer_name", "text", Category::PersonName),
            ("email", "citext", Category::Email),
            ("e_mail", "text", Category::Email),
            ("phone_number", "text", Category::Phone),
            ("ip_address", "text", Category::OnlineIdentifier),
            ("comment", "varchar(500)", Category::FreeText),
        ] {
            assert!(
                cats("accounts", column, ty).contains(&cat),
                "{column} {ty}: {:?}",
                classify("accounts", column, ty)
            );
        }
    }

    #[test]
    fn plain_business_columns_are_not_sensitive() {
        for (column, ty) in [
            ("status", "text"),
            ("amount_cents", "bigint"),
            ("created_at", "timestamp with time zone"),
            ("updated_at", "timestamp"),
            ("org_id", "uuid"),
            ("id", "bigint"),
            ("version", "integer"),
            ("currency", "char(3)"),
            ("invoice_number", "text"),
            ("name", "text"),
            ("company_name", "text"),
            ("plan", "text"),
            ("span", "text"),
            ("scorecard", "text"),
            ("company", "text"),
            ("priority", "smallint"),
        ] {
            assert!(
                classify("invoices", column, ty).is_empty(),
                "{column}: {:?}",
                classify("invoices", column, ty)
            );
        }
    }

    #[test]
    fn a_flag_or_an_instant_clears_what_it_cannot_hold() {
        // Cleared: booleans and timestamps hold no address, secret or number.
        assert!(classify("users", "email_verified", "boolean").is_empty());
        assert!(classify("users", "email_verified", "tinyint(1)").is_empty());
        assert!(classify("users", "password_changed_at", "timestamp").is_empty());
        assert!(classify("users", "phone_confirmed_at", "time").is_empty());
        // Not cleared: the same names as text, health as a boolean, a birth
        // date as a timestamp.
        assert_eq!(cats("users", "email_verified", "text"), [Category::Email]);
        assert_eq!(cats("users", "is_pregnant", "boolean"), [Category::Health]);
        assert_eq!(
            cats("users", "birth_at", "timestamp"),
            [Category::DateOfBirth]
        );
        assert_eq!(cats("users", "dob", "date"), [Category::DateOfBirth]);
        // Dates, integers and unknown types are not cleared.
        assert_eq!(cats("users", "card_expiry", "date"), [Category::Payment]);
        assert_eq!(cats("users", "card_number", "bigint"), [Category::Payment]);
        assert_eq!(cats("users", "phone", ""), [Category::Phone]);
    }

    #[test]
    fn free_text_names_need_a_type_that_holds_text() {
        assert_eq!(cats("t", "notes", "text"), [Category::FreeText]);
        assert_eq!(cats("t", "notes", ""), [Category::FreeText]);
        // A structured notes column: both reasons.
        let f = classify("t", "notes", "jsonb");
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f.iter().all(|f| f.category == Category::FreeText));
        assert!(f[0].reason.contains("\"notes\""), "{f:?}");
        assert!(f[1].reason.contains("`jsonb`"), "{f:?}");
        assert!(classify("t", "notes_count", "integer").is_empty());
        assert!(classify("t", "has_notes", "boolean").is_empty());
        assert!(classify("t", "description_id", "uuid").is_empty());
        assert_eq!(cats("t", "tags", "text[]"), [Category::FreeText]);
    }

    #[test]
    fn an_address_is_postal_unless_a_word_says_otherwise() {
        assert_eq!(
            cats("t", "billing_address", "text"),
            [Category::PostalAddress]
        );
        assert_eq!(cats("t", "street", "text"), [Category::PostalAddress]);
        assert_eq!(cats("t", "city", "text"), [Category::PostalAddress]);
        assert_eq!(cats("t", "email_address", "text"), [Category::Email]);
        assert_eq!(
            cats("t", "ip_address", "text"),
            [Category::OnlineIdentifier]
        );
        assert_eq!(
            cats("t", "ipv6_address", "text"),
            [Category::OnlineIdentifier]
        );
        for other in [
            "mac_address",
            "wallet_address",
            "web_address",
            "url_address",
        ] {
            assert!(
                !cats("t", other, "text").contains(&Category::PostalAddress),
                "{other}"
            );
        }
    }

    #[test]
    fn a_name_is_a_persons_by_its_words_or_its_table() {
        let f = classify("invoices", "contact_name", "text");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].category, Category::PersonName);
        assert_eq!(f[0].reason, "\"name\" with \"contact\": a person's name");
        let f = classify("users", "name", "text");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].category, Category::PersonName);
        assert_eq!(f[0].reason, "\"name\" on `users`, a table of people");
        assert_eq!(cats("Customer", "name", "text"), [Category::PersonName]);
        assert_eq!(cats("crm_people", "name", "text"), [Category::PersonName]);
        assert_eq!(cats("staff", "name", "text"), [Category::PersonName]);
        // Not bare: only the words say whose it is.
        assert!(classify("users", "team_name", "text").is_empty());
        assert!(classify("plans", "name", "text").is_empty());
        assert!(classify("users", "username_length", "integer").is_empty());
        assert!(classify("users", "contact_id", "bigint").is_empty());
    }

    #[test]
    fn every_matching_rule_is_reported_in_category_order() {
        // "customer_full_name": a person's name twice (two rules).
        let f = classify("t", "customer_full_name", "text");
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f.iter().all(|f| f.category == Category::PersonName));
        // Email before credential before free text.
        assert_eq!(
            cats("t", "email_token_notes", "text"),
            [Category::Email, Category::Credential, Category::FreeText]
        );
        assert_eq!(
            cats("t", "notes_secret", "text"),
            [Category::Credential, Category::FreeText]
        );
        // Found in another order than they are listed.
        assert_eq!(
            cats("t", "address_token", "text"),
            [Category::PostalAddress, Category::Credential]
        );
        assert_eq!(
            cats("t", "customer_name_email", "text"),
            [Category::PersonName, Category::Email]
        );
    }

    #[test]
    fn category_names_are_their_serialized_form() {
        for c in [
            Category::PersonName,
            Category::Email,
            Category::Phone,
            Category::PostalAddress,
            Category::DateOfBirth,
            Category::GovernmentId,
            Category::Payment,
            Category::Credential,
            Category::Health,
            Category::OnlineIdentifier,
            Category::FreeText,
        ] {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }

    #[test]
    fn a_schema_lists_its_sensitive_columns_in_order() {
        let col = |name: &str, ty: &str| ColumnInfo {
            name: name.into(),
            data_type: ty.into(),
            nullable: true,
        };
        let table = |name: &str, columns: Vec<ColumnInfo>| TableInfo {
            name: name.into(),
            kind: TableKind::Table,
            columns,
            primary_key: vec![],
            unique: vec![],
            foreign_keys: vec![],
            indexes: vec![],
            triggers: vec![],
            row_level_security: false,
        };
        let schema = SchemaInfo {
            engine: Engine::Sqlite,
            schema: "main".into(),
            tables: vec![
                table("a", vec![col("id", "integer"), col("email", "text")]),
                table("b", vec![col("status", "text")]),
                table("c", vec![col("dob", "date"), col("notes", "text")]),
            ],
        };
        let s = sensitive_columns(&schema);
        let got: Vec<(&str, &str, &str)> = s
            .iter()
            .map(|c| (c.table.as_str(), c.column.as_str(), c.data_type.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("a", "email", "text"),
                ("c", "dob", "date"),
                ("c", "notes", "text")
            ]
        );
        assert_eq!(s[0].findings, classify("a", "email", "text"));
    }

    proptest! {
        // However a planted name is spelled (snake, camel, upper, kebab),
        // it is classified the same.
        #[test]
        fn spelling_does_not_change_the_result(
            i in 0usize..8,
            style in 0usize..4,
        ) {
            let planted: [&[&str]; 8] = [
                &["date", "of", "birth"],
                &["passport", "no"],
                &["card", "pan"],
                &["api", "token", "hash"],
                &["home", "address", "line1"],
                &["family", "name"],
                &["diagnosis", "code"],
                &["tax", "id"],
            ];
            let w = planted[i];
            let snake = w.join("_");
            let spelled = match style {
                0 => snake.clone(),
                1 => w.iter().enumerate().map(|(k, p)| if k == 0 { (*p).to_owned() } else {
                    let mut c = p.chars();
                    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
                }).collect(),
                2 => snake.to_ascii_uppercase(),
                _ => w.join("-"),
            };
            let a = cats("t", &snake, "text");
            prop_assert!(!a.is_empty());
            prop_assert_eq!(a, cats("t", &spelled, "text"));
        }

        // Whatever the name, a result is sorted and every reason is non-empty.
        #[test]
        fn results_are_sorted_with_reasons(name in "[a-zA-Z_]{0,24}", ty in "(text|jsonb|boolean|integer|date|timestamp)") {
            let f = classify("t", &name, &ty);
            prop_assert!(f.windows(2).all(|p| p[0].category <= p[1].category));
            prop_assert!(f.iter().all(|x| !x.reason.is_empty()));
        }
    }
}
