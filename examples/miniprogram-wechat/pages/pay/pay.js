// One pay page: ask the merchant's server for an order, pay it with minigate-miniprogram,
// and show the shopper what the confirmed outcome means.
const { createClient, sandboxWallet } = require('minigate-miniprogram');
const config = require('../../config');

const wallet = config.sandbox
  ? sandboxWallet(wx, { baseUrl: config.minigateUrl, platform: 'wechat' })
  : null;
const minigate = createClient({ baseUrl: config.minigateUrl, platform: 'wechat', api: wallet || wx });

// What to show for each outcome (see docs/miniprogram.md).
const MESSAGES = {
  paid: 'Paid, thank you! Your order is on its way.',
  cancelled: 'Payment cancelled. Nothing was charged; tap Pay to try again.',
  failed: 'The payment did not go through. Tap Pay to try again, or choose another way to pay.',
  pending: 'We are still confirming your payment with the bank. Please do not pay again; we will let you know shortly.',
};

// Errors after which this order cannot be paid: the next tap asks for a new one.
const ORDER_GONE = ['order_closed', 'order_failed', 'order_expired', 'invalid_client_token'];

function checkout(sku) {
  return new Promise((resolve, reject) => {
    wx.request({
      url: config.shopUrl + '/checkout',
      method: 'POST',
      data: { sku, channel: 'wechat' },
      header: { 'content-type': 'application/json' },
      success: (res) => (res.statusCode === 200 ? resolve(res.data) : reject(new Error('checkout failed: HTTP ' + res.statusCode))),
      fail: (err) => reject(new Error(err.errMsg)),
    });
  });
}

Page({
  data: {
    sku: 'flat-white',
    title: 'Flat white',
    price: '',
    busy: false,
    status: '',
    message: '',
    sandbox: config.sandbox,
    outcome: 'success',
  },

  order: null,

  async onPay() {
    if (this.data.busy) return;
    this.setData({ busy: true, message: 'Paying…', status: '' });
    try {
      if (!this.order) {
        this.order = await checkout(this.data.sku);
        this.setData({ price: this.order.amount + ' ' + this.order.currency });
      }
      const result = await minigate.pay({ orderId: this.order.order_id, clientToken: this.order.client_token });
      this.setData({ status: result.status, message: MESSAGES[result.status] });
      if (result.status === 'paid') this.order = null;
    } catch (err) {
      if (err && ORDER_GONE.indexOf(err.code) >= 0) this.order = null;
      this.setData({ status: 'error', message: 'Could not pay: ' + (err && err.message) });
    } finally {
      this.setData({ busy: false });
    }
  },

  // Sandbox only: what the simulated shopper does in the payment sheet.
  onOutcome(event) {
    const outcome = event.currentTarget.dataset.outcome;
    if (wallet) wallet.outcome = outcome;
    this.setData({ outcome });
  },
});
