package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/roomlog/roomlog/domain"
)

// classify wraps err with context and, when the failure means "the database
// is not reachable right now", marks it CodeUnavailable so that callers
// answer 503 and retry instead of reporting a bug.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var de *domain.Error
	if errors.As(err, &de) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case len(pgErr.Code) >= 2 && (pgErr.Code[:2] == "08" || pgErr.Code[:2] == "53" || pgErr.Code[:2] == "57"):
			// connection exception, insufficient resources, operator
			// intervention (shutdown, cancel, statement timeout).
			if pgErr.Code == "57014" { // query_canceled: statement timeout
				return fmt.Errorf("%s: %w", op, &domain.Error{Code: domain.CodeUnavailable, Message: "query timed out", Err: err})
			}
			return unavailable(op, err)
		case pgErr.Code == "40001" || pgErr.Code == "40P01":
			return unavailable(op, err)
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	// Anything that is not a server-side error is a transport failure:
	// refused connection, reset, closed pool.
	return unavailable(op, err)
}

func unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w", op, &domain.Error{Code: domain.CodeUnavailable, Message: "database unavailable", Err: err})
}
