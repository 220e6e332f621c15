//! The attribute tables of RFC 7643 §4 (User, Group, enterprise extension)
//! and of the scimgate user-type extension, built once into the statics of
//! the parent module.

use super::{
    AttrType, AttributeDef, ENTERPRISE_USER, GROUP, Mutability, ResourceSchema, Returned,
    SchemaDef, USER, USER_TYPE_EXTENSION, Uniqueness,
};

/// The product's user types, in the order the product documents them.
pub const USER_TYPES: &[&str] = &[
    "Regular",
    "External",
    "Collaborator",
    "Contributor",
    "Viewer",
];

impl AttributeDef {
    /// A single-valued, optional, case-insensitive, readWrite attribute
    /// returned by default: the most common shape, refined by the builders.
    pub fn new(name: &'static str, kind: AttrType, description: &'static str) -> AttributeDef {
        AttributeDef {
            name,
            kind,
            multi_valued: false,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical_values: &[],
            reference_types: &[],
            description,
            sub_attributes: Vec::new(),
        }
    }

    fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }

    fn required(mut self) -> Self {
        self.required = true;
        self
    }

    fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }

    fn mutability(mut self, mutability: Mutability) -> Self {
        self.mutability = mutability;
        self
    }

    fn returned(mut self, returned: Returned) -> Self {
        self.returned = returned;
        self
    }

    fn unique(mut self, uniqueness: Uniqueness) -> Self {
        self.uniqueness = uniqueness;
        self
    }

    fn canonical(mut self, values: &'static [&'static str]) -> Self {
        self.canonical_values = values;
        self
    }

    fn refs(mut self, types: &'static [&'static str]) -> Self {
        self.reference_types = types;
        self
    }

    fn subs(mut self, subs: Vec<AttributeDef>) -> Self {
        self.sub_attributes = subs;
        self
    }

    /// Marks the attribute and all its sub-attributes readOnly.
    fn read_only(mut self) -> Self {
        self.mutability = Mutability::ReadOnly;
        self.sub_attributes = self
            .sub_attributes
            .into_iter()
            .map(Self::read_only)
            .collect();
        self
    }
}

fn string(name: &'static str, description: &'static str) -> AttributeDef {
    AttributeDef::new(name, AttrType::String, description)
}

fn complex(name: &'static str, description: &'static str, subs: Vec<AttributeDef>) -> AttributeDef {
    AttributeDef::new(name, AttrType::Complex, description).subs(subs)
}

/// The value/display/type/primary shape shared by emails, phoneNumbers, ims,
/// photos, entitlements, roles and x509Certificates.
fn plural(
    name: &'static str,
    description: &'static str,
    value_kind: AttrType,
    types: &'static [&'static str],
) -> AttributeDef {
    complex(
        name,
        description,
        vec![
            AttributeDef::new("value", value_kind, "The attribute's value."),
            string(
                "display",
                "A human-readable name, primarily used for display.",
            ),
            string("type", "A label indicating the attribute's function.").canonical(types),
            AttributeDef::new(
                "primary",
                AttrType::Boolean,
                "Whether this is the preferred value.",
            ),
        ],
    )
    .multi()
}

/// `id`, `externalId` and `meta` (RFC 7643 §3.1), listed in each core schema
/// as §3.1 permits, so lookups and projection treat them like any attribute.
fn common() -> Vec<AttributeDef> {
    vec![
        string("id", "Unique identifier assigned by the service provider.")
            .case_exact()
            .mutability(Mutability::ReadOnly)
            .returned(Returned::Always)
            .unique(Uniqueness::Server),
        string(
            "externalId",
            "Identifier assigned by the provisioning client.",
        )
        .case_exact(),
        complex(
            "meta",
            "Resource metadata.",
            vec![
                string("resourceType", "The name of the resource type.").case_exact(),
                AttributeDef::new(
                    "created",
                    AttrType::DateTime,
                    "When the resource was added.",
                ),
                AttributeDef::new(
                    "lastModified",
                    AttrType::DateTime,
                    "When the resource was last changed.",
                ),
                AttributeDef::new("location", AttrType::Reference, "The resource's URI.")
                    .case_exact(),
                string("version", "The resource's version (ETag).").case_exact(),
            ],
        )
        .read_only(),
    ]
}

pub(super) fn user() -> ResourceSchema {
    let mut attributes = common();
    attributes.extend([
        string(
            "userName",
            "Unique identifier for the user, used to sign in.",
        )
        .required()
        .unique(Uniqueness::Server),
        complex(
            "name",
            "The components of the user's name.",
            vec![
                string("formatted", "The full name, formatted for display."),
                string("familyName", "The family name."),
                string("givenName", "The given name."),
                string("middleName", "The middle name(s)."),
                string("honorificPrefix", "Honorific prefix, e.g. \"Ms.\"."),
                string("honorificSuffix", "Honorific suffix, e.g. \"III\"."),
            ],
        ),
        string("displayName", "The name of the user, suitable for display."),
        string("nickName", "The casual way to address the user."),
        AttributeDef::new(
            "profileUrl",
            AttrType::Reference,
            "A URI of the user's online profile.",
        )
        .refs(&["external"]),
        string("title", "The user's title, e.g. \"Vice President\"."),
        string(
            "userType",
            "The relationship between the organization and the user.",
        ),
        string(
            "preferredLanguage",
            "The user's preferred written or spoken language.",
        ),
        string("locale", "The user's default location, for localization."),
        string("timezone", "The user's time zone, in IANA format."),
        AttributeDef::new(
            "active",
            AttrType::Boolean,
            "The user's administrative status.",
        ),
        string("password", "The user's cleartext password; never returned.")
            .mutability(Mutability::WriteOnly)
            .returned(Returned::Never),
        plural(
            "emails",
            "Email addresses for the user.",
            AttrType::String,
            &["work", "home", "other"],
        ),
        plural(
            "phoneNumbers",
            "Phone numbers for the user.",
            AttrType::String,
            &["work", "home", "mobile", "fax", "pager", "other"],
        ),
        plural(
            "ims",
            "Instant messaging addresses for the user.",
            AttrType::String,
            &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
        ),
        plural(
            "photos",
            "URLs of photos of the user.",
            AttrType::Reference,
            &["photo", "thumbnail"],
        ),
        complex(
            "addresses",
            "Physical mailing addresses for the user.",
            vec![
                string(
                    "formatted",
                    "The full mailing address, formatted for display.",
                ),
                string("streetAddress", "The full street address."),
                string("locality", "The city or locality."),
                string("region", "The state or region."),
                string("postalCode", "The zip code or postal code."),
                string("country", "The country name (ISO 3166-1 alpha-2)."),
                string("type", "A label indicating the address's function.")
                    .canonical(&["work", "home", "other"]),
                AttributeDef::new(
                    "primary",
                    AttrType::Boolean,
                    "Whether this is the preferred address.",
                ),
            ],
        )
        .multi(),
        complex(
            "groups",
            "The groups the user belongs to; change memberships through /Groups.",
            vec![
                string("value", "The group's id."),
                AttributeDef::new("$ref", AttrType::Reference, "The URI of the group.")
                    .refs(&["User", "Group"]),
                string("display", "The group's display name."),
                string("type", "Direct or indirect membership.").canonical(&["direct", "indirect"]),
            ],
        )
        .multi()
        .read_only(),
        plural(
            "entitlements",
            "Entitlements for the user.",
            AttrType::String,
            &[],
        ),
        plural("roles", "Roles for the user.", AttrType::String, &[]),
        plural(
            "x509Certificates",
            "DER-encoded X.509 certificates.",
            AttrType::Binary,
            &[],
        ),
    ]);
    ResourceSchema {
        name: "User",
        endpoint: "/Users",
        description: "User Account",
        core: SchemaDef {
            id: USER,
            name: "User",
            description: "User Account",
            attributes,
            hidden: Default::default(),
        },
        extensions: vec![enterprise_user(), user_type_extension()],
    }
}

fn enterprise_user() -> SchemaDef {
    SchemaDef {
        id: ENTERPRISE_USER,
        name: "EnterpriseUser",
        description: "Enterprise User",
        attributes: vec![
            string("employeeNumber", "Identifier assigned by the organization."),
            string("costCenter", "The user's cost center."),
            string("organization", "The user's organization."),
            string("division", "The user's division."),
            string("department", "The user's department."),
            complex(
                "manager",
                "The user's manager.",
                vec![
                    string("value", "The id of the manager's User resource."),
                    AttributeDef::new(
                        "$ref",
                        AttrType::Reference,
                        "The URI of the manager's User resource.",
                    )
                    .refs(&["User"]),
                    string("displayName", "The manager's display name.")
                        .mutability(Mutability::ReadOnly),
                ],
            ),
        ],
        hidden: Default::default(),
    }
}

fn user_type_extension() -> SchemaDef {
    SchemaDef {
        id: USER_TYPE_EXTENSION,
        name: "ScimgateUser",
        description: "The user's type in the product",
        attributes: vec![
            string(
                "userType",
                "One of Regular, External, Collaborator, Contributor, Viewer.",
            )
            .canonical(USER_TYPES),
        ],
        hidden: Default::default(),
    }
}

pub(super) fn group() -> ResourceSchema {
    let mut attributes = common();
    attributes.extend([
        string("displayName", "A human-readable name for the group.").required(),
        complex(
            "members",
            "The members of the group.",
            vec![
                string("value", "The id of the member resource.").mutability(Mutability::Immutable),
                AttributeDef::new(
                    "$ref",
                    AttrType::Reference,
                    "The URI of the member resource.",
                )
                .refs(&["User", "Group"])
                .mutability(Mutability::Immutable),
                string("display", "The member's display name."),
                string("type", "The member's resource type.")
                    .canonical(&["User", "Group"])
                    .mutability(Mutability::Immutable),
            ],
        )
        .multi(),
    ]);
    ResourceSchema {
        name: "Group",
        endpoint: "/Groups",
        description: "Group",
        core: SchemaDef {
            id: GROUP,
            name: "Group",
            description: "Group",
            attributes,
            hidden: Default::default(),
        },
        extensions: Vec::new(),
    }
}
