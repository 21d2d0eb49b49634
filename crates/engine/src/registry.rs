use std::collections::BTreeMap;
use std::sync::Arc;

use revoke_config::{Config, ConfigError};
use revoke_core::{Connector, ConnectorFactory};

use crate::EngineError;

/// Connector instances by name, as built from config.
pub type Connectors = BTreeMap<String, Arc<dyn Connector>>;

/// The connector types a binary knows; turns config tables into connectors.
#[derive(Default)]
pub struct Registry {
    factories: Vec<Box<dyn ConnectorFactory>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.factories.iter().map(|x| x.kind()))
            .finish()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, factory: impl ConnectorFactory + 'static) -> Self {
        self.factories.push(Box::new(factory));
        self
    }

    pub fn kinds(&self) -> Vec<&'static str> {
        self.factories.iter().map(|f| f.kind()).collect()
    }

    /// Pure validation of the whole config, connector tables included.
    pub fn validate(&self, config: &Config) -> Result<(), ConfigError> {
        let refs: Vec<&dyn ConnectorFactory> = self.factories.iter().map(|b| b.as_ref()).collect();
        config.validate(&refs)
    }

    /// Builds every configured connector; call after `validate`. Makes no network call.
    pub fn build(&self, config: &Config) -> Result<Connectors, EngineError> {
        let mut out = Connectors::new();
        for (name, section) in &config.connectors {
            let factory = self
                .factories
                .iter()
                .find(|f| f.kind() == section.kind)
                .ok_or_else(|| EngineError::UnknownConnector {
                    connector: format!("{name} (kind {:?})", section.kind),
                })?;
            let params = serde_json::Value::Object(section.params.clone());
            let c = factory
                .build(name, &params)
                .map_err(|issue| EngineError::Build {
                    connector: name.clone(),
                    issue,
                })?;
            out.insert(name.clone(), c);
        }
        Ok(out)
    }
}
