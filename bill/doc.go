// Package bill reads WeChat Pay's daily trade bill (交易账单, bill_type ALL)
// as WeChat serves it: a gzip stream holding a CSV-like file of four parts,
//
//   - a header row of Chinese column names (交易时间, 商户号, 微信订单号,
//     商户订单号, 交易状态, 应结订单金额, 退款金额, 订单金额, …), in an order
//     WeChat does not promise, sometimes after a UTF-8 byte order mark;
//   - one detail row per payment (交易状态 SUCCESS), refund (REFUND) or
//     revoked micropay order (REVOKED), every field preceded by a back-tick;
//   - a summary header (总交易单数, 应结订单总金额, 退款总金额, …);
//   - one summary row, back-ticked like the details.
//
// A Reader streams it: rows come out one by one and only the current line
// is held in memory, however long the file. Columns are found by their
// header names, back-ticks are stripped, amounts (yuan with exactly two
// decimals; the fee column with up to five) are parsed to integers exactly,
// never through floating point. At the end the summary row is checked
// against the detail rows (the count and every total) and, when the caller
// knows WeChat's hash_value, the SHA-1 of the uncompressed bytes is checked
// against it. Any deviation is an error: a bill that does not check out is
// never half-trusted.
package bill
