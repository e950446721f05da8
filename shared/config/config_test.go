package config

import (
	"os"
	"strings"
	"testing"
)

type spec struct {
	Runtime
	Redis
}

func (s spec) Validate() error {
	if err := s.Runtime.Validate(); err != nil {
		return err
	}
	return s.Redis.Validate()
}

func TestLoad(t *testing.T) {
	tests := map[string]struct {
		env     map[string]string
		wantErr string
		check   func(t *testing.T, s spec)
	}{
		"defaults": {
			check: func(t *testing.T, s spec) {
				if s.Port != 8080 || s.MaxBodyBytes != 1<<20 || s.URL != "redis://127.0.0.1:6379/0" {
					t.Errorf("defaults not applied: %+v", s)
				}
			},
		},
		"knative contract": {
			env: map[string]string{"PORT": "9000", "K_SERVICE": "data-stocks", "K_REVISION": "data-stocks-00001"},
			check: func(t *testing.T, s spec) {
				if s.Port != 9000 || s.ServiceName("x") != "data-stocks" || s.Revision != "data-stocks-00001" {
					t.Errorf("got %+v", s)
				}
			},
		},
		"bad port":      {env: map[string]string{"PORT": "70000"}, wantErr: "PORT"},
		"port not int":  {env: map[string]string{"PORT": "abc"}, wantErr: "PORT"},
		"bad log level": {env: map[string]string{"LOG_LEVEL": "loud"}, wantErr: "LOG_LEVEL"},
		"bad redis url": {env: map[string]string{"REDIS_URL": "http://x"}, wantErr: "REDIS_URL"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for _, k := range []string{"PORT", "K_SERVICE", "K_REVISION", "LOG_LEVEL", "REDIS_URL"} {
				t.Setenv(k, "") // restores the old value after the test
				os.Unsetenv(k)
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var s spec
			err := Load(&s)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want mention of %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
}
