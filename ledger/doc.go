// Package ledger owns the platform's books: a double-entry ledger in PostgreSQL (int64 minor
// units with an ISO 4217 currency), the retailers' money terms (prepaid or credit with a limit,
// pay on shipment or pay on sale), their commissions, the platform's margin on each operator's
// codes, top-ups recorded by managers, and the statements and clearing that settle a period.
// It never sees a code: it counts codes and prices them.
//
// # Accounts and signs
//
// Accounts are named retailer:<id>, operator:<id>, platform:margin, platform:bank and
// platform:cash, one per currency. Amounts are credit-positive: an entry's amount is what the
// platform comes to owe the account's party (positive) or what the party comes to owe the
// platform (negative). So a retailer's balance is its prepaid funds when positive and its debt
// when negative; an operator's balance is what the platform owes it; platform:margin is what
// the platform earned; platform:bank and platform:cash are negative by the money the platform
// holds. The database holds the two invariants: the entries of a ledger transaction sum to zero
// per currency (a deferred constraint trigger, checked at commit), and an account's balance
// is the sum of its entries (kept by a trigger on every entry; the balance column refuses any
// other change; entries and transactions are append-only).
//
// # Money flows
//
// A code of face value F sold to a retailer with commission rate c, of an operator on whose
// codes the platform's margin rate is m (rates in basis points; per retailer, operator and
// product, and per operator and product, with "every product" and "every operator" defaults;
// each per-code amount is rounded down to the minor unit):
//
//	retailer:<r>      −(F − c·F)   the retailer pays the face value less its commission
//	operator:<o>      +(F − m·F)   the operator is owed the face value less the margin
//	platform:margin   +(m·F − c·F) the platform keeps the difference (negative if c > m)
//
// When that is posted depends on the retailer's settlement mode:
//   - pay on shipment: when a shipment is sent, for every code in it, in the shipment's
//     transaction; unsold codes returned to the vault (StockReturn) are credited back on the
//     same terms, reversing all three legs;
//   - pay on sale (consignment): when the sale is reported or authorised online, on the
//     terms fixed when the code was shipped (a later change of rates does not reprice stock
//     already at the terminal); a returned code costs nothing.
//
// The price terms of every shipment are fixed when it is sent, so a retailer that switches
// mode keeps paying for earlier stock as agreed then. A lost or revoked terminal's quarantined
// codes are not credited back: the retailer still owes them (pay on shipment: charged already;
// pay on sale: they keep counting against its credit until settled by hand).
//
// A top-up recorded by a manager (bank transfer or cash, with a reference that must be unique:
// a double-entered top-up is refused) credits retailer:<r> and debits platform:bank or
// platform:cash.
//
// # Credit
//
// A prepaid retailer has a limit of zero. Before a shipment to a retailer with money terms is
// taken, under the lock of the retailer's account row (so concurrent orders are decided one
// after the other), the ledger checks that its balance, less the value of its consigned stock
// still unsold, less this shipment's price, stays at or above minus its credit limit. An
// order beyond it is refused (conflict "credit_limit", saying what to do), and the vault
// stores nothing and raises a credit_limit alarm. A retailer without money terms is not
// charged: money starts for it with `evoucher money account set`.
//
// # Statements and clearing
//
// A statement of a retailer or an operator for a period [from, to) lists its stock movements
// (codes, face value, commission, margin, net per kind, operator or retailer and product), a
// retailer's top-ups, and per currency the opening balance, the movements and the closing
// balance, which equal the ledger's entries on the party's account exactly. It is a signed
// Statement document (package message), stored and appended to the exchange log in the
// transaction that makes it, and renders as CSV and PDF. The clearing report of a period
// splits what retailers were charged among the operators whose codes they took and the
// platform.
package ledger
