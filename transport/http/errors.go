package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/roomlog/roomlog/domain"
)

// errorBody is the one error shape of every answer:
// {"error": {"code", "message", "details"?}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    domain.Code         `json:"code"`
	Message string              `json:"message"`
	Details []domain.FieldError `json:"details,omitempty"`
}

// internalMessage is all a caller ever learns about an internal error.
const internalMessage = "internal error"

// internalBody is the answer to every internal error; internalJSON is its
// encoding, answered when an answer itself could not be encoded
// (TestInternalJSON keeps the two the same).
var internalBody = errorBody{Error: errorDetail{Code: domain.CodeInternal, Message: internalMessage}}

const internalJSON = `{"error":{"code":"internal","message":"internal error"}}`

// statusOf maps an error code to its HTTP status. It is the only place that
// does.
func statusOf(code domain.Code) int {
	switch code {
	case domain.CodeInvalid:
		return http.StatusBadRequest
	case domain.CodeUnauthorized:
		return http.StatusUnauthorized
	case domain.CodeForbidden:
		return http.StatusForbidden
	case domain.CodeNotFound:
		return http.StatusNotFound
	case domain.CodeConflict:
		return http.StatusConflict
	case domain.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case domain.CodeRateLimited:
		return http.StatusTooManyRequests
	case domain.CodeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// toBody turns err into the body a caller may see. Errors that are not a
// *domain.Error are internal, except context expiry, which means the
// request ran out of time (or its client left): the outcome is unknown, so
// it is reported as unavailable and never as a success.
func toBody(err error) errorBody {
	var de *domain.Error
	switch {
	case errors.As(err, &de) && de.Code != domain.CodeInternal:
		msg := de.Message
		if msg == "" {
			msg = string(de.Code)
		}
		return errorBody{Error: errorDetail{Code: de.Code, Message: msg, Details: de.Fields}}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return errorBody{Error: errorDetail{Code: domain.CodeUnavailable, Message: "the request timed out or was cancelled"}}
	default:
		return internalBody
	}
}

// writeError answers err in the error shape with the status its code maps
// to. Internal errors are logged with their cause and answered with a
// generic message; unavailable ones are logged and carry Retry-After.
func (s *Server) writeError(c *gin.Context, err error) {
	body := toBody(err)
	status := statusOf(body.Error.Code)
	ctx := c.Request.Context()
	switch body.Error.Code {
	case domain.CodeInternal:
		s.logger.ErrorContext(ctx, "request failed", attrRoute, route(c), attrError, err)
	case domain.CodeUnavailable:
		s.logger.WarnContext(ctx, "dependency unavailable", attrRoute, route(c), attrError, err)
	}
	switch status {
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(s.cfg.RetryAfter.Seconds()))))
	case http.StatusUnauthorized:
		c.Header("WWW-Authenticate", "Bearer")
	}
	s.writeJSON(c, status, body)
}

// writeJSON answers v as JSON with status.
func (s *Server) writeJSON(c *gin.Context, status int, v any) {
	b, err := marshal(v)
	if err != nil {
		// Only a bug gets here: every answer is a plain struct.
		status = s.encodeFailed(c, err)
		b = []byte(internalJSON)
	}
	c.Data(status, "application/json; charset=utf-8", b)
}

// encodeFailed logs that c's answer could not be encoded and returns the
// status to answer internalJSON with instead.
func (s *Server) encodeFailed(c *gin.Context, err error) int {
	s.logger.ErrorContext(c.Request.Context(), "encode response", attrRoute, route(c), attrError, err)
	return http.StatusInternalServerError
}

// invalid returns a CodeInvalid error with field-level details.
func invalid(message string, fields ...domain.FieldError) error {
	return &domain.Error{Code: domain.CodeInvalid, Message: message, Fields: fields}
}

// field is shorthand for a domain.FieldError.
func field(name, message string) domain.FieldError {
	return domain.FieldError{Field: name, Message: message}
}

// marshal encodes v without escaping <, > and &, so that payloads are
// delivered byte for byte as they were stored (and hashed).
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
