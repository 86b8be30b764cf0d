//! `allow_ips`: the source-address allowlist, addresses and CIDRs or
//! named lists (`"list:github"`), else the preset's.

use ipnet::IpNet;
use serde::Deserialize;

use super::At;
use crate::config::load::Loader;
use crate::config::raw::parse_cidr;
use crate::config::ConfigError;

/// One `allow_ips` entry: an address or CIDR, or `"list:NAME"` (a provider's
/// published list, kept current at run time).
#[derive(Debug, Clone)]
pub(crate) enum AllowEntry {
    Net(IpNet),
    List(String),
}

impl<'de> Deserialize<'de> for AllowEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.trim().strip_prefix("list:") {
            Some(name) => Ok(AllowEntry::List(name.to_owned())),
            None => parse_cidr(&s).map(AllowEntry::Net).map_err(|e| {
                serde::de::Error::custom(format!(
                    "{e}, or \"list:github\" for a provider's published list"
                ))
            }),
        }
    }
}

/// The source-address allowlist: addresses and CIDRs written in the config,
/// and named lists (`"list:github"`) whose ranges are runtime state, looked
/// up through a [`NamedLists`] at each request.
#[derive(Debug)]
pub(crate) struct IpCheck {
    pub(crate) nets: Vec<IpNet>,
    /// Names of `[[ip_list]]`s or built-in lists, in the order written.
    pub(crate) lists: Vec<String>,
    pub(crate) from_preset: bool,
}

impl Loader<'_> {
    /// The route's own list, else the preset's, else none.
    pub(super) fn allow_ips(
        &self,
        at: &At<'_>,
        raw: Option<Vec<AllowEntry>>,
    ) -> Result<Option<IpCheck>, ConfigError> {
        Ok(match raw {
            Some(list) if list.is_empty() => {
                return Err(self.error(Some(at.span.clone()), format!("{}.allow_ips is empty, which would refuse every caller: list the provider's addresses, or remove the key", at.label)))
            }
            Some(list) => {
                let (mut nets, mut lists) = (Vec::new(), Vec::new());
                for entry in list {
                    match entry {
                        AllowEntry::Net(n) => nets.push(n),
                        AllowEntry::List(name) => {
                            self.known_list(at, &name)?;
                            if !lists.contains(&name) {
                                lists.push(name);
                            }
                        }
                    }
                }
                Some(IpCheck {
                    nets,
                    lists,
                    from_preset: false,
                })
            }
            None => match at.preset {
                Some(d) if !d.allow_ips.is_empty() => Some(IpCheck {
                    nets: d
                        .allow_ips
                        .iter()
                        .map(|s| s.parse().expect("preset CIDRs are valid"))
                        .collect(),
                    lists: Vec::new(),
                    from_preset: true,
                }),
                _ => None,
            },
        })
    }

    /// `list:NAME` names a built-in list or an `[[ip_list]]`.
    pub(super) fn known_list(&self, at: &At<'_>, name: &str) -> Result<(), ConfigError> {
        let known = self.ip_list_names();
        if known.iter().any(|k| k == name) {
            return Ok(());
        }
        Err(self.error(Some(at.span.clone()), format!("{}.allow_ips names \"list:{name}\", which is no list: built in are {}; define another as [[ip_list]] name = {name:?}, url = \"https://…\", format = \"json\" or \"lines\"", at.label, known.join(", "))))
    }
}
