// Types for minigate-miniprogram (hand-written; test/types.test.js checks they match index.js).

export type Platform = "wechat" | "alipay";
export type PayStatus = "paid" | "cancelled" | "failed" | "pending";

export interface ClientOptions {
  /** minigate's address as the mini program reaches it (on the request allow-list). */
  baseUrl: string;
  /** "wechat" uses `wx`, "alipay" uses `my`. */
  platform: Platform;
  /** The platform object; defaults to the global `wx` / `my`. */
  api?: object;
  /** How long to keep asking minigate for the final state (default 15000 ms). */
  confirmTimeoutMs?: number;
  /** First wait between status checks (default 500 ms); grows by half up to the max. */
  pollIntervalMs?: number;
  /** Longest wait between status checks (default 3000 ms). */
  maxPollIntervalMs?: number;
  /** Timeout of each HTTP request (default 10000 ms). */
  requestTimeoutMs?: number;
}

export interface PayArgs {
  /** The order id the merchant's server got from `POST /v1/orders`. */
  orderId: string;
  /** The order's `client_token`, handed over by the merchant's server. */
  clientToken: string;
}

export interface PayResult {
  /** Confirmed by minigate: "paid" only when minigate says the order is paid. */
  status: PayStatus;
  orderId: string;
  /** The order status minigate reported last, or null if it could not be asked. */
  serverStatus: string | null;
  /** What the payment sheet said (WeChat errMsg, Alipay resultCode), for logs only. */
  appResult: string | null;
}

export interface OrderStatus {
  id: string;
  status: string;
  paid: boolean;
}

export interface Client {
  readonly platform: Platform;
  readonly baseUrl: string;
  /**
   * Pay an order: login code (WeChat), minigate's pay parameters, the payment sheet, then
   * confirmation with minigate. A second call for the same order while one runs returns the
   * same promise.
   */
  pay(args: PayArgs): Promise<PayResult>;
  /** The order's status as minigate knows it. */
  status(args: PayArgs): Promise<OrderStatus>;
}

export interface MinigateErrorFields {
  type: string;
  code: string;
  message: string;
  param?: string | null;
  statusCode?: number | null;
}

/**
 * minigate's error shape `{ error: { type, code, message, param? } }`; errors on the device
 * use the types "network_error" and "platform_error".
 */
export class MinigateError extends Error {
  constructor(fields: MinigateErrorFields);
  readonly name: "MinigateError";
  type: string;
  code: string;
  param: string | null;
  /** The HTTP status of minigate's answer; null when there was none. */
  statusCode: number | null;
}

export function createClient(options: ClientOptions): Client;

export interface SandboxWalletOptions {
  /** The sandbox minigate's address (the wallet is at `/sandbox/wallet/`). */
  baseUrl: string;
  platform: Platform;
  /** The simulated shopper (their openid is derived from it); default "sandbox-shopper". */
  user?: string;
  /** What the shopper does in the payment sheet; default "success". */
  outcome?: "success" | "cancel" | "fail";
  requestTimeoutMs?: number;
}

export interface SandboxWallet {
  /** What the next payment sheet does; may be changed between payments. */
  outcome: "success" | "cancel" | "fail";
  request(options: object): unknown;
  login(options: object): void;
  getAuthCode(options: object): void;
  requestPayment(options: object): void;
  tradePay(options: object): void;
}

/**
 * A stand-in for the app's login and payment sheet that pays in a sandbox minigate's
 * simulated wallet; pass it as `createClient`'s `api` in the developer tools. Never in a
 * release: nothing is really paid through it.
 */
export function sandboxWallet(api: object, options: SandboxWalletOptions): SandboxWallet;
