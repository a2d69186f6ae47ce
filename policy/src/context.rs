//! What a policy can ask about: the connection (fixed for its lifetime, and
//! substituted once by [`crate::CompiledPolicies::compile`]) and the request
//! (passed to every [`crate::CompiledPolicies::evaluate`]).
//!
//! The connection-level keys are the AWS IoT policy variables ("Basic",
//! "Thing" and "X.509 Certificate AWS IoT Core policy variables"): they never
//! change while a client is connected, so conditions on them are decided at
//! compile time. Only the keys below that vary per request are left for
//! evaluation.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// Everything AWS IoT knows about a connection when it evaluates a policy.
/// The broker fills it in after authenticating the client; the HTTP
/// data-plane API fills it in per request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionContext {
    /// `iot:ClientId`: the MQTT client identifier (after any server
    /// assignment).
    pub client_id: String,
    /// `aws:SourceIp`: the client's address. An IPv4-mapped IPv6 address is
    /// compared as the IPv4 address it maps.
    pub source_ip: Option<IpAddr>,
    /// `iot:DomainName`: the domain name the client connected to, if known.
    pub domain_name: Option<String>,
    /// The registry thing the connection is attached to, if any.
    ///
    /// AWS IoT resolves the `iot:Connection.Thing.*` variables only when the
    /// thing named by the client ID is attached to the authenticating
    /// principal (`AttachThingPrincipal`); the caller sets this only then, so
    /// `Some` also means `iot:Connection.Thing.IsAttached` is `true`.
    pub thing: Option<ConnectedThing>,
    /// The client certificate's fields, when the client authenticated with
    /// one.
    pub certificate: Option<CertificateInfo>,
}

impl ConnectionContext {
    /// A connection known only by its client ID.
    pub fn new(client_id: impl Into<String>) -> ConnectionContext {
        ConnectionContext {
            client_id: client_id.into(),
            ..ConnectionContext::default()
        }
    }

    /// `iot:Connection.Thing.IsAttached`.
    pub fn is_thing_attached(&self) -> bool {
        self.thing.is_some()
    }
}

/// The thing a connection is attached to (`iot:Connection.Thing.*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectedThing {
    /// `iot:Connection.Thing.ThingName`.
    pub name: String,
    /// `iot:Connection.Thing.ThingTypeName`; `None` for a thing without a type.
    pub type_name: Option<String>,
    /// `iot:Connection.Thing.Attributes[name]` (attribute names are matched
    /// exactly, case included).
    pub attributes: BTreeMap<String, String>,
}

impl ConnectedThing {
    /// A thing with a name and nothing else.
    pub fn new(name: impl Into<String>) -> ConnectedThing {
        ConnectedThing {
            name: name.into(),
            ..ConnectedThing::default()
        }
    }
}

/// The client certificate fields AWS IoT exposes as `iot:Certificate.*`.
///
/// Multi-valued fields hold every value in certificate order; as AWS
/// documents, only the first five are used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateInfo {
    /// `iot:Certificate.SerialNumber`.
    pub serial_number: Option<String>,
    /// `iot:Certificate.Subject.*`.
    pub subject: DistinguishedName,
    /// `iot:Certificate.Issuer.*`.
    pub issuer: DistinguishedName,
    /// `iot:Certificate.Subject.AlternativeName.*`.
    pub subject_alternative_names: AlternativeNames,
    /// `iot:Certificate.Issuer.AlternativeName.*`.
    pub issuer_alternative_names: AlternativeNames,
    /// `iot:Certificate.Validity.NotBefore`, seconds since the Unix epoch.
    /// (Not in AWS's variable list; offered for `Date` conditions.)
    pub not_before: Option<i64>,
    /// `iot:Certificate.Validity.NotAfter`, seconds since the Unix epoch.
    pub not_after: Option<i64>,
}

/// The attributes of an X.509 subject or issuer name that AWS IoT exposes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(missing_docs)] // Each field is the attribute its name says.
pub struct DistinguishedName {
    pub distinguished_name_qualifier: Vec<String>,
    pub country: Vec<String>,
    pub organization: Vec<String>,
    pub organizational_unit: Vec<String>,
    pub state: Vec<String>,
    pub common_name: Vec<String>,
    pub serial_number: Vec<String>,
    pub title: Vec<String>,
    pub surname: Vec<String>,
    pub given_name: Vec<String>,
    pub initials: Vec<String>,
    pub pseudonym: Vec<String>,
    pub generation_qualifier: Vec<String>,
}

/// The subject/issuer alternative name entries AWS IoT exposes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(missing_docs)] // Each field is the entry type its name says.
pub struct AlternativeNames {
    pub rfc822_name: Vec<String>,
    pub dns_name: Vec<String>,
    pub directory_name: Vec<String>,
    pub uniform_resource_identifier: Vec<String>,
    pub ip_address: Vec<String>,
}

/// Distinguished-name attributes, in AWS's documented order, with their
/// policy names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DnField {
    DistinguishedNameQualifier,
    Country,
    Organization,
    OrganizationalUnit,
    State,
    CommonName,
    SerialNumber,
    Title,
    Surname,
    GivenName,
    Initials,
    Pseudonym,
    GenerationQualifier,
}

impl DnField {
    pub(crate) const ALL: [DnField; 13] = [
        DnField::DistinguishedNameQualifier,
        DnField::Country,
        DnField::Organization,
        DnField::OrganizationalUnit,
        DnField::State,
        DnField::CommonName,
        DnField::SerialNumber,
        DnField::Title,
        DnField::Surname,
        DnField::GivenName,
        DnField::Initials,
        DnField::Pseudonym,
        DnField::GenerationQualifier,
    ];

    pub(crate) fn policy_name(self) -> &'static str {
        match self {
            DnField::DistinguishedNameQualifier => "DistinguishedNameQualifier",
            DnField::Country => "Country",
            DnField::Organization => "Organization",
            DnField::OrganizationalUnit => "OrganizationalUnit",
            DnField::State => "State",
            DnField::CommonName => "CommonName",
            DnField::SerialNumber => "SerialNumber",
            DnField::Title => "Title",
            DnField::Surname => "Surname",
            DnField::GivenName => "GivenName",
            DnField::Initials => "Initials",
            DnField::Pseudonym => "Pseudonym",
            DnField::GenerationQualifier => "GenerationQualifier",
        }
    }
}

impl DistinguishedName {
    pub(crate) fn values(&self, field: DnField) -> &[String] {
        match field {
            DnField::DistinguishedNameQualifier => &self.distinguished_name_qualifier,
            DnField::Country => &self.country,
            DnField::Organization => &self.organization,
            DnField::OrganizationalUnit => &self.organizational_unit,
            DnField::State => &self.state,
            DnField::CommonName => &self.common_name,
            DnField::SerialNumber => &self.serial_number,
            DnField::Title => &self.title,
            DnField::Surname => &self.surname,
            DnField::GivenName => &self.given_name,
            DnField::Initials => &self.initials,
            DnField::Pseudonym => &self.pseudonym,
            DnField::GenerationQualifier => &self.generation_qualifier,
        }
    }
}

/// Alternative-name entry types, with their policy names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AltNameField {
    Rfc822Name,
    DnsName,
    DirectoryName,
    UniformResourceIdentifier,
    IpAddress,
}

impl AltNameField {
    pub(crate) const ALL: [AltNameField; 5] = [
        AltNameField::Rfc822Name,
        AltNameField::DnsName,
        AltNameField::DirectoryName,
        AltNameField::UniformResourceIdentifier,
        AltNameField::IpAddress,
    ];

    pub(crate) fn policy_name(self) -> &'static str {
        match self {
            AltNameField::Rfc822Name => "RFC822Name",
            AltNameField::DnsName => "DNSName",
            AltNameField::DirectoryName => "DirectoryName",
            AltNameField::UniformResourceIdentifier => "UniformResourceIdentifier",
            AltNameField::IpAddress => "IPAddress",
        }
    }
}

impl AlternativeNames {
    pub(crate) fn values(&self, field: AltNameField) -> &[String] {
        match field {
            AltNameField::Rfc822Name => &self.rfc822_name,
            AltNameField::DnsName => &self.dns_name,
            AltNameField::DirectoryName => &self.directory_name,
            AltNameField::UniformResourceIdentifier => &self.uniform_resource_identifier,
            AltNameField::IpAddress => &self.ip_address,
        }
    }
}

/// The per-request condition keys: the ones that can change while a client
/// stays connected.
///
/// Keys absent here are absent from the request context, with IAM's rules
/// for absent keys (`StringEquals` fails, `StringNotEquals` holds, `...IfExists`
/// holds, `Null` is `true`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestContext<'a> {
    /// `aws:CurrentTime` and `aws:EpochTime`: the time of the request, in
    /// seconds since the Unix epoch. The caller reads the clock; this crate
    /// never does.
    pub current_time: Option<i64>,
    /// `iot:ConnectAttributes` (multi-valued, for `iot:Connect`): the
    /// features the CONNECT uses, e.g. `PersistentConnect`, `LastWill`.
    pub connect_attributes: Option<&'a [&'a str]>,
}

impl<'a> RequestContext<'a> {
    /// A request made at `epoch_seconds`.
    pub fn at(epoch_seconds: i64) -> RequestContext<'a> {
        RequestContext {
            current_time: Some(epoch_seconds),
            connect_attributes: None,
        }
    }
}
