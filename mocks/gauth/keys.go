package gauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"

	"github.com/go-jose/go-jose/v4"
	"github.com/jackc/pgx/v5/pgxpool"
)

// keySet holds the signing key and every published public key.
type keySet struct {
	kid    string
	signer *rsa.PrivateKey
	public map[string]*rsa.PublicKey
	jwks   jose.JSONWebKeySet
}

// loadOrCreateKeys reads the signing keys; on an empty table it generates one.
// Two processes racing on first start may each insert a key; both then sign with
// the oldest, and both keys stay published, so either's tokens verify.
func loadOrCreateKeys(ctx context.Context, pool *pgxpool.Pool) (*keySet, error) {
	ks, err := readKeys(ctx, pool)
	if err != nil || ks != nil {
		return ks, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	der := x509.MarshalPKCS1PrivateKey(key)
	sum := sha256.Sum256(x509.MarshalPKCS1PublicKey(&key.PublicKey))
	kid := base64.RawURLEncoding.EncodeToString(sum[:12])
	pemText := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der})
	if _, err := pool.Exec(ctx, `INSERT INTO gauth.signing_keys (kid, private_key_pem) VALUES ($1, $2) ON CONFLICT DO NOTHING`, kid, string(pemText)); err != nil {
		return nil, fmt.Errorf("store signing key: %w", err)
	}
	ks, err = readKeys(ctx, pool)
	if err == nil && ks == nil {
		err = fmt.Errorf("signing key vanished after insert")
	}
	return ks, err
}

func readKeys(ctx context.Context, pool *pgxpool.Pool) (*keySet, error) {
	rows, err := pool.Query(ctx, `SELECT kid, private_key_pem FROM gauth.signing_keys ORDER BY created_at, kid`)
	if err != nil {
		return nil, fmt.Errorf("read signing keys: %w", err)
	}
	defer rows.Close()
	var ks *keySet
	for rows.Next() {
		var kid, text string
		if err := rows.Scan(&kid, &text); err != nil {
			return nil, fmt.Errorf("read signing keys: %w", err)
		}
		block, _ := pem.Decode([]byte(text))
		if block == nil {
			return nil, fmt.Errorf("signing key %s: not PEM", kid)
		}
		key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %w", kid, err)
		}
		if ks == nil {
			ks = &keySet{kid: kid, signer: key, public: map[string]*rsa.PublicKey{}}
		}
		ks.public[kid] = &key.PublicKey
		ks.jwks.Keys = append(ks.jwks.Keys, jose.JSONWebKey{Key: &key.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read signing keys: %w", err)
	}
	return ks, nil
}
