package domain

import (
	"errors"
	"fmt"
)

// Code classifies an Error so that transports can map it to a status in one
// place. Codes are stable strings that appear in API responses.
type Code string

// The error codes roomlog uses. They appear verbatim in API error bodies.
const (
	CodeInvalid      Code = "invalid"      // bad input; Details says which fields
	CodeUnauthorized Code = "unauthorized" // no or bad credentials
	CodeForbidden    Code = "forbidden"    // authenticated but not allowed
	CodeNotFound     Code = "not_found"    // no such thing, or not readable by the caller
	CodeConflict     Code = "conflict"     // idempotency key reused with other content
	CodeTooLarge     Code = "too_large"    // payload or body over its limit
	CodeUnavailable  Code = "unavailable"  // a dependency (the database) is down; retry
	CodeRateLimited  Code = "rate_limited" // too many requests; retry later
	CodeInternal     Code = "internal"     // a bug or an unexpected failure; details are logged only
)

// FieldError names one invalid field of an input and why it is invalid.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is roomlog's error type: a Code, a human message safe to show to the
// caller, optional field-level details, and an optional wrapped cause that is
// never shown to callers.
type Error struct {
	Code    Code
	Message string
	Fields  []FieldError
	Err     error
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same Code, so that
// errors.Is(err, domain.ErrNotFound) matches any not-found error.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
	}
	return false
}

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Sentinels for errors.Is. They match any *Error of the same code.
var (
	ErrInvalid      = &Error{Code: CodeInvalid}
	ErrUnauthorized = &Error{Code: CodeUnauthorized}
	ErrForbidden    = &Error{Code: CodeForbidden}
	ErrNotFound     = &Error{Code: CodeNotFound}
	ErrConflict     = &Error{Code: CodeConflict}
	ErrTooLarge     = &Error{Code: CodeTooLarge}
	ErrUnavailable  = &Error{Code: CodeUnavailable}
	ErrRateLimited  = &Error{Code: CodeRateLimited}
)

// ErrorCode returns the Code of err if it is (or wraps) an *Error, and
// CodeInternal otherwise.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
