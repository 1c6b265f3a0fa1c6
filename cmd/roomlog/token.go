package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/auth"
)

func cmdToken(_ context.Context, args []string, e env) error {
	fs := newFlags("token", e)
	user := fs.String("user", "", "user id (the sub claim); required")
	roles := fs.String("roles", "", "comma-separated roles: buyer, seller, admin, auditor")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	secret := fs.String("secret", "", "HS256 secret (default $ROOMLOG_JWT_SECRET)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *user == "" {
		fmt.Fprintln(e.stderr, "roomlog token: -user is required")
		return errUsage
	}
	key := *secret
	if key == "" {
		key = e.getenv("ROOMLOG_JWT_SECRET")
	}
	if key == "" {
		return fmt.Errorf("no secret: set ROOMLOG_JWT_SECRET or pass -secret")
	}
	p := domain.Principal{UserID: *user}
	for _, r := range strings.Split(*roles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			p.Roles = append(p.Roles, domain.Role(r))
		}
	}
	tok, err := auth.MintHS256([]byte(key), p, *ttl, time.Now(), &auth.MintOptions{
		UserIDClaim: e.getenv("ROOMLOG_JWT_USER_CLAIM"), RolesClaim: e.getenv("ROOMLOG_JWT_ROLES_CLAIM"),
		Issuer: e.getenv("ROOMLOG_JWT_ISSUER"), Audience: e.getenv("ROOMLOG_JWT_AUDIENCE"),
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, tok)
	return nil
}
