"""minigate: the payment backend for WeChat and Alipay mini programs."""

__version__ = "0.1.0"
