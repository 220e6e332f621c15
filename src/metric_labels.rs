//! Metric label values without an allocation per request: the methods and
//! status codes the gateway sees are a short list of static strings.

use metrics::SharedString;

/// A status code as a label; codes outside the usual list are spelled out.
pub fn status(status: http::StatusCode) -> SharedString {
    let known = match status.as_u16() {
        200 => "200",
        201 => "201",
        204 => "204",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        412 => "412",
        413 => "413",
        429 => "429",
        500 => "500",
        501 => "501",
        502 => "502",
        503 => "503",
        504 => "504",
        code => return SharedString::from(code.to_string()),
    };
    SharedString::const_str(known)
}

/// A method as a label.
pub fn method(method: &http::Method) -> SharedString {
    let known = match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        _ => return SharedString::from(method.to_string()),
    };
    SharedString::const_str(known)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_spell_the_code_and_method() {
        for code in [200, 201, 204, 404, 418, 429, 502, 599] {
            let code = http::StatusCode::from_u16(code).unwrap();
            assert_eq!(&*status(code), code.as_str());
        }
        for name in [
            "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "PROPFIND",
        ] {
            let parsed = http::Method::from_bytes(name.as_bytes()).unwrap();
            assert_eq!(&*method(&parsed), name);
        }
    }
}
