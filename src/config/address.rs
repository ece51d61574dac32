//! The one address parser: config files and the command line both use it,
//! and it is lettre's, the parser that sends.
//!
//! Policy (docs/config.md): display names may use any characters; the
//! address itself must be ASCII, so an internationalised domain is written
//! in its `xn--` form (servers without SMTPUTF8 would refuse it anyway), and
//! text around the address is not trimmed silently.

use lettre::message::Mailbox;

/// Why a text is not an address, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressError {
    pub message: String,
    pub hint: &'static str,
}

pub fn parse_mailbox(text: &str) -> Result<Mailbox, AddressError> {
    if text.trim() != text {
        return Err(AddressError {
            message: format!("`{text}` has spaces around the address"),
            hint: "remove the leading and trailing spaces",
        });
    }
    let mailbox = text.parse::<Mailbox>().map_err(|error| AddressError {
        message: format!("`{text}` is not a valid e-mail address ({error})"),
        hint: "write `name@example.com` or `Display Name <name@example.com>`",
    })?;
    if !mailbox.email.to_string().is_ascii() {
        return Err(AddressError {
            message: format!("`{}` is not an ASCII address", mailbox.email),
            hint: "write an internationalised domain in its ASCII form (`xn--...`); display names may use any characters",
        });
    }
    Ok(mailbox)
}

/// Whether two addresses are the same mailbox: the local part as written,
/// the domain without regard to case (as DNS compares it).
pub fn same_address(a: &lettre::Address, b: &lettre::Address) -> bool {
    a.user() == b.user() && a.domain().eq_ignore_ascii_case(b.domain())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_may_be_unicode_addresses_not() {
        assert!(parse_mailbox("José Müller <jose@example.com>").is_ok());
        assert!(parse_mailbox("jo@bücher.example").is_err());
        assert!(parse_mailbox("jo@xn--bcher-kva.example").is_ok());
        assert!(parse_mailbox("jo@example.com ").is_err());
        assert!(parse_mailbox("not an address").is_err());
    }

    #[test]
    fn domains_compare_without_case() {
        let a = parse_mailbox("facturen@ACME.NL").unwrap().email;
        let b = parse_mailbox("facturen@acme.nl").unwrap().email;
        let c = parse_mailbox("Facturen@acme.nl").unwrap().email;
        assert!(same_address(&a, &b));
        assert!(!same_address(&b, &c), "local parts are case-sensitive");
    }
}
