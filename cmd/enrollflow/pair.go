package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/config"
	"github.com/enrollflow/enrollflow/factor/mobile/phone"
)

const pairUsage = `Usage:
  enrollflow pair [--server URL --env ENV] [--application ID] [--key-file PATH] [--push-token T] CODE_OR_URI
  enrollflow pair --key-file PATH --otp

Plays the authenticator app: pairs this "phone" with the pairing key an
enrollment shows (the code, or the enrollflow://pair URI of its QR code,
which names the server and environment), keeping its key pair and what the
pairing answered in the key file, and prints JSON with the device id and a
current offline passcode. --otp prints the current offline passcode of the
paired key file. Exit status 1, with the error's code, when the service
refuses the pairing.

Flags:
`

// pair is `enrollflow pair`.
func pair(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("pair", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), pairUsage); fs.PrintDefaults() }
	server := fs.String("server", "", "the server's base URL (from the URI when one is given)")
	envID := fs.String("env", "", "the environment (from the URI when one is given)")
	application := fs.String("application", config.DemoApplicationID, "the mobile application id the app is")
	keyFile := fs.String("key-file", "enrollflow-phone.json", "where the app's key pair and pairing are kept (0600)")
	pushToken := fs.String("push-token", "", "the push token to register")
	name := fs.String("name", "enrollflow pair", "the device name the app reports")
	otpOnly := fs.Bool("otp", false, "print the current offline passcode of the paired key file and exit")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the server")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err}
	}
	if *otpOnly {
		if fs.NArg() != 0 {
			return &usageError{errors.New("pair --otp takes no code")}
		}
		keys, err := phone.LoadOrCreate(*keyFile)
		if err != nil {
			return err
		}
		code, err := keys.Passcode(time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, code)
		return nil
	}
	if fs.NArg() != 1 {
		return &usageError{errors.New("pair needs one pairing code or URI (enrollflow pair --help)")}
	}
	srv, env, code, err := phone.ParseCodeOrURI(fs.Arg(0), *server, *envID)
	if err != nil {
		return &usageError{err}
	}
	keys, err := phone.LoadOrCreate(*keyFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	err = keys.Pair(ctx, &http.Client{Timeout: *timeout}, srv, env, *application, code, phone.Device{Name: *name, Model: "enrollflow pair", OS: "cli", PushToken: *pushToken})
	var refused *phone.Refused
	if errors.As(err, &refused) {
		_ = json.NewEncoder(stdout).Encode(map[string]any{"error": map[string]any{"status": refused.Status, "code": refused.Code, "message": refused.Message}})
		return fmt.Errorf("pairing refused: %s", refused.Code)
	}
	if err != nil {
		return err
	}
	if err := keys.Save(*keyFile); err != nil {
		return err
	}
	passcode, err := keys.Passcode(time.Now())
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(map[string]any{"device": map[string]any{"id": keys.DeviceID, "type": "MOBILE"},
		"user": map[string]any{"id": keys.UserID}, "passcode": passcode, "keyFile": *keyFile})
}
