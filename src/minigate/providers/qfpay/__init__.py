"""QFPay (qfapi, Hong Kong / Singapore): WeChat mini program payments, pay_type 800213.

``signing`` has the MD5/SHA256 rules, ``messages`` builds and parses every call (pure),
``client`` runs them over the transport. See docs/providers/qfpay.md for the facts and the
assumptions (txdtm time zone, close support for 800213, refund re-send after a miss).
"""

from minigate.providers.qfpay.client import QfpayClient
from minigate.providers.qfpay.messages import QfpayAccount

__all__ = ["QfpayAccount", "QfpayClient"]
