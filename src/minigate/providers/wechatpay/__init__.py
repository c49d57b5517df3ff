"""WeChat Pay direct: API v3 (JSON, RSA, AES-GCM) and API v2 (XML, MD5 / HMAC-SHA256).

``v3sign``/``v2sign`` hold the signature rules, ``v3_messages``/``v2_messages`` build and
parse every call (pure), ``xml`` is the only XML parser (defusedxml), ``keys`` loads PEMs,
``client`` runs it all over the transport, ``setup`` turns settings into clients.
See docs/providers/wechatpay.md.
"""

from minigate.providers.wechatpay.client import WechatpayV2Client, WechatpayV3Client

__all__ = ["WechatpayV2Client", "WechatpayV3Client"]
