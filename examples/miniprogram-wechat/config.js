// Where the sample finds its servers. In the developer tools, with "Does not verify valid
// domain names" ticked (project.config.json: urlCheck false), 127.0.0.1 works; on a phone,
// use addresses the phone can reach, and in a release, https domains on the allow-list.
module.exports = {
  // minigate (`minigate serve`); the mini program talks to its /v1/client API only.
  minigateUrl: 'http://127.0.0.1:8000',
  // The merchant's server (examples/merchant-server), which creates the order.
  shopUrl: 'http://127.0.0.1:8100',
  // true: wx.login and wx.requestPayment are played by the sandbox wallet of a sandbox
  // minigate. false: the real WeChat login and payment sheet (a minigate in live mode).
  sandbox: true,
};
