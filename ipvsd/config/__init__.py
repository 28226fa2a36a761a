"""Configuration: kube-proxy's flags and config file in, one validated `ProxyConfig` out.

- `values`: setting values spelled as kube-proxy spells them, parsed into typed values (low
  enough for `plan` to use the types);
- `settings`: `ProxyConfig`, the resolved settings, and how layers of them merge;
- `flags`: kube-proxy's flag table (used, accepted and ignored, refused);
- `kube_proxy_configuration`: the KubeProxyConfiguration file (`--config`);
- `command_line`: argv in, the command and its configuration out.

Pure: no I/O beyond reading the config file, no asyncio; only `ipvsd.model` below it.
"""
