package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/roomlog/roomlog/domain"
)

// readyTimeout bounds one readiness check.
const readyTimeout = 3 * time.Second

type statusJSON struct {
	Status string `json:"status"`
	// Detail is Params.ReadyDetail's answer on a ready /readyz.
	Detail any `json:"detail,omitempty"`
}

// healthz is GET /healthz: the process is up and serving.
func (s *Server) healthz(c *gin.Context) {
	s.writeJSON(c, http.StatusOK, statusJSON{Status: "ok"})
}

// readyz is GET /readyz: 200 when Params.Ready reports ready, else 503 in
// the error shape. A *domain.Error from Ready lends its message and field
// details; any other error is logged and shown only as "not ready".
func (s *Server) readyz(c *gin.Context) {
	if s.ready != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
		defer cancel()
		if err := s.ready(ctx); err != nil {
			notReady := &domain.Error{Code: domain.CodeUnavailable, Message: "not ready", Err: err}
			var de *domain.Error
			if errors.As(err, &de) {
				if de.Message != "" {
					notReady.Message = "not ready: " + de.Message
				}
				notReady.Fields = de.Fields
			}
			s.writeError(c, notReady)
			return
		}
	}
	answer := statusJSON{Status: "ok"}
	if s.readyDetail != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
		defer cancel()
		if d, err := s.readyDetail(ctx); err != nil {
			s.logger.WarnContext(ctx, "readiness detail", attrError, err)
		} else {
			answer.Detail = d
		}
	}
	s.writeJSON(c, http.StatusOK, answer)
}
