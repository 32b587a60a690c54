// Order logic of the @sentry/node corpus app (build "b" pads and extends it: code moved).
/*EXTRA*/
const fs = require("fs");

function lineTotal(line) {
  return line.product.price * line.qty; // product missing: TypeError
}

function total(order) {
  return order.lines.map((line) => lineTotal(line)).reduce((a, b) => a + b, 0);
}

function loadConfig(name) {
  return JSON.parse(fs.readFileSync(`/nonexistent/shop/${name}.json`, "utf8"));
}

function parseRefund(text) {
  return JSON.parse(text);
}

module.exports = { total, loadConfig, parseRefund };
