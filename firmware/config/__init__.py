"""The gateway's configuration: schema and validation (`schema`), the file on disk (`store`)."""

from firmware.config.schema import (
    DEFAULT_DIAL_PLAN,
    SCHEMA_VERSION,
    Config,
    ConfigError,
    FieldError,
    HardwareConfig,
    PortConfig,
    RegionalConfig,
    Secret,
    SipConfig,
    SystemConfig,
    WebConfig,
    load_config,
    parse_config,
)
from firmware.config.store import ConfigStore

__all__ = [
    "DEFAULT_DIAL_PLAN",
    "SCHEMA_VERSION",
    "Config",
    "ConfigError",
    "ConfigStore",
    "FieldError",
    "HardwareConfig",
    "PortConfig",
    "RegionalConfig",
    "Secret",
    "SipConfig",
    "SystemConfig",
    "WebConfig",
    "load_config",
    "parse_config",
]
