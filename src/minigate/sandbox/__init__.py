"""Stateful simulators of every provider, WeChat login, and a shopper's phone.

As in the real world, the PSPs resell WeChat Pay and Alipay: their simulators create
prepays in one shared simulated WeChat Pay core (:mod:`.wechat_core`) and one simulated
Alipay core (:mod:`.alipay_core`); the wallet (:mod:`.wallet`) pays in the core, which
tells the provider simulator that owns the prepay, which then sends its own signed
notification with its own retry timetable (:mod:`.notifier`).
"""
