// Checkout code of the browser corpus app, split into its own chunk (build "b" pads and extends it).
/*EXTRA*/
export function applyCoupon(cart, code) {
  const coupon = cart.coupons.find((c) => c.code === code);
  return cart.total - coupon.amount; // unknown code: TypeError
}

export function renderPrice(cents) {
  return new Intl.NumberFormat("en", { style: "currency", currency: "EURO" }).format(cents / 100);
}
