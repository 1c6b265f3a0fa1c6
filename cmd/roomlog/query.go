package main

import (
	"context"
	"errors"
)

func cmdQuery(ctx context.Context, args []string, e env) error {
	return errors.New("query: not available yet")
}
