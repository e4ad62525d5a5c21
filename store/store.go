// Package store keeps orders, their logs and received payment notifications
// in PostgreSQL.
//
// Every status change is written together with its log row in one
// transaction, and every write carries an idempotency key, so that retried
// activities and duplicate notifications change nothing the second time.
package store

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"

	"github.com/payflow/payflow/payment"
)

var (
	ErrNotFound  = errors.New("order not found")
	ErrDuplicate = errors.New("order already exists")
)

//go:embed migrations/*.sql
var migrations embed.FS

// versionTable is tern's bookkeeping table; the name is ours so that it
// cannot collide with another tool's in a shared database.
const versionTable = "payflow_schema_version"

// Store is the PostgreSQL persistence of orders. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to databaseURL and checks that the database answers.
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx redacts the password from parse errors only on a best-effort
		// basis and keeps the whole string in the error value, so none of it
		// goes into ours.
		return nil, errors.New("open store: cannot parse database url")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, redact("open store: create pool", err, cfg.ConnConfig.Password)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, redact("open store: ping database", err, cfg.ConnConfig.Password)
	}
	return &Store{pool: pool}, nil
}

// redact turns a pgx connection error into one that cannot leak the
// password: pgconn.ConnectError carries the full config (password included)
// for anyone who unwraps it, so only the text is kept, and that without the
// password should a server or driver message ever quote it.
func redact(msg string, err error, password string) error {
	text := err.Error()
	if password != "" {
		text = strings.ReplaceAll(text, password, "xxxxx")
	}
	return fmt.Errorf("%s: %s", msg, text)
}

// Close closes all connections.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers (for readiness probes).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// Migrate applies the embedded migrations. tern holds a PostgreSQL advisory
// lock while it works, so several processes starting at once is safe.
func (s *Store) Migrate(ctx context.Context) (err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: acquire connection: %w", err)
	}
	defer func() {
		if err == nil {
			conn.Release()
			return
		}
		// The advisory lock belongs to the session: if tern failed before it
		// could unlock (say ctx was cancelled), a pooled connection would keep
		// the lock and block every later migration. Closing the session
		// releases it.
		c := conn.Hijack()
		_ = c.Close(context.Background())
	}()

	m, err := migrate.NewMigrator(ctx, conn.Conn(), versionTable)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := m.LoadMigrations(sub); err != nil {
		return fmt.Errorf("migrate: load: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// NewOrder is what CreateOrder needs to create an order.
type NewOrder struct {
	OutTradeNo  string
	AmountFen   int64
	Currency    string // payment.DefaultCurrency when empty
	Description string
	ExpiresAt   time.Time // no expiry when zero
	TradeType   string    // JSAPI or NATIVE to prepay at WeChat; empty otherwise
	OpenID      string    // the JSAPI payer
}

// CreateOrder inserts a PENDING order together with its first log row.
// It returns ErrDuplicate if an order with that out_trade_no exists.
//
// Both rows are written by one statement (one round trip, its own
// transaction): POST /orders is on the path of every payment, and each
// round trip holds one of the pool's connections.
func (s *Store) CreateOrder(ctx context.Context, o NewOrder) (payment.Order, error) {
	if o.Currency == "" {
		o.Currency = payment.DefaultCurrency
	}
	// ON CONFLICT DO NOTHING rather than a unique violation: a concurrent
	// create of the same order waits for ours and then returns no row, and
	// then no log row is written either.
	var log payment.Log
	order, err := scanOrder(rowFunc(func(dest ...any) error {
		return s.pool.QueryRow(ctx, `
		WITH o AS (
			INSERT INTO orders (out_trade_no, amount_fen, currency, description, status, expires_at, trade_type, openid)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (out_trade_no) DO NOTHING
			RETURNING `+orderColumns+`
		), l AS (
			INSERT INTO order_logs (out_trade_no, from_status, to_status, remarks, idempotency_key)
			SELECT $1, '', $5, $9, $10 FROM o
			RETURNING from_status, to_status, remarks, created_at
		)
		SELECT o.*, l.* FROM o CROSS JOIN l`,
			o.OutTradeNo, o.AmountFen, o.Currency, o.Description, payment.StatusPending,
			nullTime(o.ExpiresAt), o.TradeType, o.OpenID, orderCreatedRemark, string(payment.KeyCreated)).
			Scan(append(dest, &log.FromStatus, &log.ToStatus, &log.Remarks, &log.CreatedAt)...)
	}))
	if errors.Is(err, pgx.ErrNoRows) || isUniqueViolation(err) {
		return payment.Order{}, fmt.Errorf("create order %s: %w", o.OutTradeNo, ErrDuplicate)
	}
	if err != nil {
		return payment.Order{}, fmt.Errorf("create order %s: %w", o.OutTradeNo, err)
	}
	log.CreatedAt = log.CreatedAt.UTC()
	order.Logs = []payment.Log{log}
	order.Notifications = []payment.NotificationRecord{} // none yet; [] like GetOrder, never null
	order.Refunds = []payment.Refund{}
	return order, nil
}

// orderCreatedRemark is the remark of an order's first log row.
const orderCreatedRemark = "order created"

// rowFunc is a pgx.Row made of a Scan function.
type rowFunc func(dest ...any) error

func (f rowFunc) Scan(dest ...any) error { return f(dest...) }

// OrderRow returns the order alone, without its logs, notifications or
// prepay, or ErrNotFound: one indexed read, for the payment's hot path
// (verification, late duplicates) that needs only the order's fields.
func (s *Store) OrderRow(ctx context.Context, outTradeNo string) (payment.Order, error) {
	order, err := scanOrder(s.pool.QueryRow(ctx,
		`SELECT `+orderColumns+` FROM orders WHERE out_trade_no = $1`, outTradeNo))
	if errors.Is(err, pgx.ErrNoRows) {
		return payment.Order{}, fmt.Errorf("order row %s: %w", outTradeNo, ErrNotFound)
	}
	if err != nil {
		return payment.Order{}, fmt.Errorf("order row %s: %w", outTradeNo, err)
	}
	return order, nil
}

// GetOrder returns the order with its logs, oldest first, or ErrNotFound.
func (s *Store) GetOrder(ctx context.Context, outTradeNo string) (payment.Order, error) {
	// One snapshot for both queries, so the logs match the status.
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return payment.Order{}, fmt.Errorf("get order %s: %w", outTradeNo, err)
	}
	defer tx.Rollback(ctx)

	order, err := scanOrder(tx.QueryRow(ctx,
		`SELECT `+orderPrepayColumns+` FROM orders LEFT JOIN prepays USING (out_trade_no) WHERE out_trade_no = $1`, outTradeNo))
	if errors.Is(err, pgx.ErrNoRows) {
		return payment.Order{}, fmt.Errorf("get order %s: %w", outTradeNo, ErrNotFound)
	}
	if err != nil {
		return payment.Order{}, fmt.Errorf("get order %s: %w", outTradeNo, err)
	}
	order.Logs, err = orderLogs(ctx, tx, outTradeNo)
	if err != nil {
		return payment.Order{}, fmt.Errorf("get order %s: %w", outTradeNo, err)
	}
	order.Notifications, err = orderNotifications(ctx, tx, outTradeNo)
	if err != nil {
		return payment.Order{}, fmt.Errorf("get order %s: %w", outTradeNo, err)
	}
	order.Refunds, err = orderRefunds(ctx, tx, outTradeNo)
	if err != nil {
		return payment.Order{}, fmt.Errorf("get order %s: %w", outTradeNo, err)
	}
	return order, nil
}

// PaidOutcome says what MarkPaid did (payment.PaidOutcome).
type PaidOutcome = payment.PaidOutcome

// What MarkPaid did, as package payment names it.
const (
	OutcomePaid          = payment.PaidNow
	OutcomeAlreadyPaid   = payment.PaidAlready
	OutcomeReview        = payment.PaidReview
	OutcomeAlreadyReview = payment.PaidInReview
)

// MarkPaidParams describe a payment confirmed by WeChat.
type MarkPaidParams struct {
	OutTradeNo    string
	TransactionID string
	PaidAt        time.Time // the database's now() when zero
	Remarks       string    // the PAID log row's remarks; they should name the transaction id
	// PaidFen is what WeChat says was paid (the order's amount when zero).
	// An order sent to REVIEW by a payment after close keeps it, with the
	// transaction, so that the money can be refunded.
	PaidFen int64
}

// MarkPaid records a confirmed payment. From PENDING the order becomes PAID;
// a payment that does not fit (a second transaction, a payment after close,
// a transaction that already paid another order) sends it to REVIEW instead.
// It is idempotent and safe to call concurrently: the order row is locked,
// so however many callers race, one PAID log row is written.
func (s *Store) MarkPaid(ctx context.Context, p MarkPaidParams) (PaidOutcome, error) {
	no, txid := p.OutTradeNo, p.TransactionID
	if txid == "" {
		return "", fmt.Errorf("mark paid %s: empty transaction id", no)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("mark paid %s: %w", no, err)
	}
	defer tx.Rollback(ctx)

	status, paidBy, err := lockOrder(ctx, tx, no)
	if err != nil {
		return "", fmt.Errorf("mark paid %s: %w", no, err)
	}

	var (
		remarks string
		key     payment.Key
		outcome = OutcomeReview
	)
	switch status {
	case payment.StatusPending:
		// The unique index would reject this too, but as an error that a
		// retrying caller would hit forever; an operator should look instead.
		var other string
		err := tx.QueryRow(ctx, `SELECT out_trade_no FROM orders WHERE transaction_id = $1`, txid).Scan(&other)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return "", fmt.Errorf("mark paid %s: %w", no, err)
		}
		if other != "" {
			remarks = fmt.Sprintf("transaction %s already paid order %s", txid, other)
			key = payment.KeyReviewTxReused(txid)
			break
		}
		if err := markPaid(ctx, tx, p); err != nil {
			return "", fmt.Errorf("mark paid %s: %w", no, err)
		}
		outcome = OutcomePaid
	case payment.StatusPaid, payment.StatusRefunded:
		if paidBy == txid {
			return OutcomeAlreadyPaid, nil
		}
		remarks = fmt.Sprintf("second transaction %s for an order paid by %s", txid, paidBy)
		key = payment.KeyReviewSecondTx(txid)
	case payment.StatusClosed:
		remarks = fmt.Sprintf("paid after close: transaction %s", txid)
		key = payment.KeyReviewPaidAfterClose(txid)
		// The order keeps the transaction and what was paid, unless the
		// transaction paid another order too.
		if err := keepTransaction(ctx, tx, p); err != nil {
			return "", fmt.Errorf("mark paid %s: %w", no, err)
		}
	case payment.StatusReview:
		return OutcomeAlreadyReview, nil
	default:
		return "", fmt.Errorf("mark paid %s: unexpected status %q", no, status)
	}
	if outcome == OutcomeReview {
		changed, err := changeStatus(ctx, tx, no, status, payment.StatusReview, remarks, key)
		if err != nil {
			return "", fmt.Errorf("mark paid %s: %w", no, err)
		}
		if !changed {
			outcome = OutcomeAlreadyReview
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return "", fmt.Errorf("mark paid %s: %w", no, err)
	}
	return outcome, nil
}

// keepTransaction records on a locked order without a transaction the
// transaction WeChat confirmed and what was paid under it, unless the
// transaction is already another order's.
func keepTransaction(ctx context.Context, tx pgx.Tx, p MarkPaidParams) error {
	_, err := tx.Exec(ctx, `
		UPDATE orders SET transaction_id = $2, paid_at = coalesce($3, now()),
			paid_fen = coalesce(nullif($4, 0), amount_fen), updated_at = now()
		WHERE out_trade_no = $1 AND transaction_id IS NULL
		AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.transaction_id = $2)`,
		p.OutTradeNo, p.TransactionID, nullTime(p.PaidAt), p.PaidFen)
	if err != nil {
		return fmt.Errorf("keep transaction: %w", err)
	}
	return nil
}

// markPaid moves a locked PENDING order to PAID with its log row.
func markPaid(ctx context.Context, tx pgx.Tx, p MarkPaidParams) error {
	remarks := p.Remarks
	if remarks == "" {
		remarks = "paid: transaction " + p.TransactionID
	}
	inserted, err := insertLog(ctx, tx, p.OutTradeNo, payment.StatusPending, payment.StatusPaid, remarks, payment.KeyPaid(p.TransactionID))
	if err != nil {
		return err
	}
	if !inserted {
		// An order never returns to PENDING, so a PAID row for a PENDING
		// order means the data was edited by hand: refuse rather than write a
		// status change without its log row.
		return fmt.Errorf("order is PENDING but has a PAID log for transaction %s", p.TransactionID)
	}
	_, err = tx.Exec(ctx, `
		UPDATE orders
		SET status = $2, transaction_id = $3, paid_at = coalesce($4, now()), paid_fen = amount_fen, updated_at = now()
		WHERE out_trade_no = $1`,
		p.OutTradeNo, payment.StatusPaid, p.TransactionID, nullTime(p.PaidAt))
	if err != nil {
		return fmt.Errorf("update order: %w", err)
	}
	return nil
}

// nullTime maps the zero time to NULL, so that SQL can default it to now().
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// MarkReviewParams send an order to REVIEW.
type MarkReviewParams struct {
	OutTradeNo string
	Reason     string      // the log row's remarks
	Key        payment.Key // idempotency key: a repeat is a no-op
	// TransactionID, PaidFen and PaidAt: a payment WeChat confirmed that
	// does not add up (an amount that differs); the order keeps it so that
	// the money can be refunded. Empty when there is none.
	TransactionID string
	PaidFen       int64
	PaidAt        time.Time
	// AllowFromPaid lets a PAID order go to REVIEW: only the bill
	// reconciliation asks for it (a payment WeChat's books do not have).
	// Otherwise the only way from PAID to REVIEW is a second transaction.
	AllowFromPaid bool
}

// ReviewOutcome says what MarkReview did.
type ReviewOutcome struct {
	Changed bool           // the order went to REVIEW now, with its log row
	Status  payment.Status // the order's status afterwards
}

// MarkReview moves the order to REVIEW with one log row. It changes nothing
// when the key was used before, the order is already in REVIEW, or it is
// PAID/REFUNDED and AllowFromPaid is not set.
func (s *Store) MarkReview(ctx context.Context, p MarkReviewParams) (ReviewOutcome, error) {
	no := p.OutTradeNo
	if p.Key == "" {
		return ReviewOutcome{}, fmt.Errorf("mark review %s: empty idempotency key", no)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return ReviewOutcome{}, fmt.Errorf("mark review %s: %w", no, err)
	}
	defer tx.Rollback(ctx)
	status, _, err := lockOrder(ctx, tx, no)
	if err != nil {
		return ReviewOutcome{}, fmt.Errorf("mark review %s: %w", no, err)
	}
	switch {
	case status == payment.StatusReview,
		status == payment.StatusRefunded,
		status == payment.StatusPaid && !p.AllowFromPaid:
		return ReviewOutcome{Status: status}, nil
	}
	if p.TransactionID != "" {
		if err := keepTransaction(ctx, tx, MarkPaidParams{OutTradeNo: no, TransactionID: p.TransactionID, PaidAt: p.PaidAt, PaidFen: p.PaidFen}); err != nil {
			return ReviewOutcome{}, fmt.Errorf("mark review %s: %w", no, err)
		}
	}
	changed, err := changeStatus(ctx, tx, no, status, payment.StatusReview, p.Reason, p.Key)
	if err != nil {
		return ReviewOutcome{}, fmt.Errorf("mark review %s: %w", no, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return ReviewOutcome{}, fmt.Errorf("mark review %s: %w", no, err)
	}
	if !changed {
		return ReviewOutcome{Status: status}, nil
	}
	return ReviewOutcome{Changed: true, Status: payment.StatusReview}, nil
}

// AppendLog records an event that changes no status: from_status and
// to_status are the order's current status. A repeated idemKey is a no-op
// and returns false.
func (s *Store) AppendLog(ctx context.Context, outTradeNo, remarks string, idemKey payment.Key) (inserted bool, err error) {
	if idemKey == "" {
		return false, fmt.Errorf("append log %s: empty idempotency key", outTradeNo)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("append log %s: %w", outTradeNo, err)
	}
	defer tx.Rollback(ctx)

	// FOR SHARE: the status must not change before our row records it.
	var status payment.Status
	err = tx.QueryRow(ctx, `SELECT status FROM orders WHERE out_trade_no = $1 FOR SHARE`, outTradeNo).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("append log %s: %w", outTradeNo, ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("append log %s: %w", outTradeNo, err)
	}
	inserted, err = insertLog(ctx, tx, outTradeNo, status, status, remarks, idemKey)
	if err != nil {
		return false, fmt.Errorf("append log %s: %w", outTradeNo, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("append log %s: %w", outTradeNo, err)
	}
	return inserted, nil
}

// RecordNotification stores a notification (its JSON in content) with the
// outcome of handling it; for one already stored (same ID) it sets the
// outcome. inserted is false when nothing changed.
func (s *Store) RecordNotification(ctx context.Context, n payment.Notification, outcome payment.NotificationOutcome) (inserted bool, err error) {
	if n.ID == "" {
		return false, errors.New("record notification: empty id")
	}
	content, err := json.Marshal(n)
	if err != nil {
		return false, fmt.Errorf("record notification %s: %w", n.ID, err)
	}
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO notifications (id, source, out_trade_no, transaction_id, amount_fen, content, outcome, received_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, now()))
		ON CONFLICT (id) DO UPDATE SET outcome = EXCLUDED.outcome
		WHERE notifications.outcome <> EXCLUDED.outcome`,
		n.ID, string(n.Source), n.OutTradeNo, n.TransactionID, n.AmountFen, content, string(outcome), nullTime(n.ReceivedAt))
	if err != nil {
		return false, fmt.Errorf("record notification %s: %w", n.ID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// orderColumns are what scanOrder reads; table-qualified because prepays
// has a created_at too. orderColumns has no prepay (NULL); read
// orderPrepayColumns from orders LEFT JOIN prepays.
const (
	orderBaseColumns = `orders.out_trade_no, orders.amount_fen, orders.currency, orders.description, orders.status,
	coalesce(orders.transaction_id, ''), orders.paid_at, orders.created_at, orders.updated_at,
	orders.expires_at, orders.trade_type, orders.openid, coalesce(orders.paid_fen, 0), orders.refunded_fen`
	orderColumns       = orderBaseColumns + `, NULL::jsonb`
	orderPrepayColumns = orderBaseColumns + `, prepays.result`
)

func scanOrder(row pgx.Row) (payment.Order, error) {
	var (
		o      payment.Order
		prepay []byte
	)
	err := row.Scan(&o.OutTradeNo, &o.AmountFen, &o.Currency, &o.Description, &o.Status,
		&o.TransactionID, &o.PaidAt, &o.CreatedAt, &o.UpdatedAt,
		&o.ExpiresAt, &o.TradeType, &o.OpenID, &o.PaidFen, &o.RefundedFen, &prepay)
	if err != nil {
		return payment.Order{}, err
	}
	if len(prepay) > 0 {
		var p payment.Prepay
		if err := json.Unmarshal(prepay, &p); err != nil {
			return payment.Order{}, fmt.Errorf("decode prepay: %w", err)
		}
		o.CodeURL, o.JSAPI = p.CodeURL, p.JSAPI
	}
	if o.ExpiresAt != nil {
		t := o.ExpiresAt.UTC()
		o.ExpiresAt = &t
	}
	if o.PaidAt != nil {
		t := o.PaidAt.UTC()
		o.PaidAt = &t
	}
	o.CreatedAt, o.UpdatedAt = o.CreatedAt.UTC(), o.UpdatedAt.UTC()
	return o, nil
}

// orderLogs returns the order's logs, oldest first; never nil, so that the
// order's JSON has "logs": [].
func orderLogs(ctx context.Context, tx pgx.Tx, outTradeNo string) ([]payment.Log, error) {
	rows, err := tx.Query(ctx, `
		SELECT from_status, to_status, remarks, created_at
		FROM order_logs WHERE out_trade_no = $1
		ORDER BY created_at, id`, outTradeNo)
	if err != nil {
		return nil, fmt.Errorf("query logs: %w", err)
	}
	logs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (payment.Log, error) {
		var l payment.Log
		err := row.Scan(&l.FromStatus, &l.ToStatus, &l.Remarks, &l.CreatedAt)
		l.CreatedAt = l.CreatedAt.UTC()
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("query logs: %w", err)
	}
	if logs == nil {
		logs = []payment.Log{}
	}
	return logs, nil
}

// lockOrder locks the order row for the rest of tx, so that concurrent
// writers to one order run one after the other and each sees the status the
// previous one left. It returns the status and the transaction id, empty if none.
func lockOrder(ctx context.Context, tx pgx.Tx, outTradeNo string) (payment.Status, string, error) {
	var (
		status payment.Status
		txid   string
	)
	err := tx.QueryRow(ctx, `
		SELECT status, coalesce(transaction_id, '')
		FROM orders WHERE out_trade_no = $1
		FOR UPDATE`, outTradeNo).Scan(&status, &txid)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", ErrNotFound
	}
	if err != nil {
		return "", "", fmt.Errorf("lock order: %w", err)
	}
	return status, txid, nil
}

// changeStatus writes the log row first: if its idempotency key was used
// before, this change was already made and nothing else is written.
func changeStatus(ctx context.Context, tx pgx.Tx, outTradeNo string, from, to payment.Status, remarks string, key payment.Key) (bool, error) {
	inserted, err := insertLog(ctx, tx, outTradeNo, from, to, remarks, key)
	if err != nil || !inserted {
		return false, err
	}
	_, err = tx.Exec(ctx, `UPDATE orders SET status = $2, updated_at = now() WHERE out_trade_no = $1`, outTradeNo, to)
	if err != nil {
		return false, fmt.Errorf("update order: %w", err)
	}
	return true, nil
}

// insertLog adds a log row unless one with the same idempotency key exists;
// it reports whether it inserted.
func insertLog(ctx context.Context, tx pgx.Tx, outTradeNo string, from, to payment.Status, remarks string, key payment.Key) (bool, error) {
	tag, err := tx.Exec(ctx, `
		INSERT INTO order_logs (out_trade_no, from_status, to_status, remarks, idempotency_key)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (out_trade_no, idempotency_key) DO NOTHING`,
		outTradeNo, string(from), string(to), remarks, string(key))
	if err != nil {
		return false, fmt.Errorf("insert log: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

func isForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
}
