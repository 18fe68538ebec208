from .config_check import ConfigError, check_config
from .config_imports import (base_config_paths, base_custom_imports,
                             custom_imports_of, merged_custom_imports,
                             missing_base_imports, resolve_config_path,
                             rss_custom_imports)

__all__ = [
    'ConfigError', 'check_config', 'base_config_paths', 'base_custom_imports',
    'custom_imports_of', 'merged_custom_imports', 'missing_base_imports',
    'resolve_config_path', 'rss_custom_imports'
]
