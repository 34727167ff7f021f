"""Error types shared across the platform.

Every error says what went wrong, where (file, line, field, setting) and what to do about it.
Domain modules raise subclasses of `EnergyAssetsError`; the CLI prints them as one line.
"""


class EnergyAssetsError(Exception):
    """Base class for errors the platform raises on purpose."""


class ConfigurationError(EnergyAssetsError):
    """A setting (environment variable, path, port) is wrong or missing."""


class InsecureFileError(ConfigurationError):
    """A secret file (private key, password, passfile) is readable by the group or by others."""


class CertificateError(EnergyAssetsError):
    """A certificate or key file is missing, corrupt, insecure or expired."""


class ClusterError(EnergyAssetsError):
    """The managed PostgreSQL cluster could not be created, started, stopped or reloaded."""


class DatabaseError(EnergyAssetsError):
    """A PostgreSQL operation failed (unreachable server, refused admin operation)."""


class DataValidationError(EnergyAssetsError):
    """Input data is malformed; the message names the source, location and field."""


class SchemaContractError(EnergyAssetsError):
    """Incoming data violates a table's schema contract; nothing was loaded."""
