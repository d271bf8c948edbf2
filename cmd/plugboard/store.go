package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/plugboard/plugboard/registry"
	"github.com/plugboard/plugboard/registry/storage"
)

// masterKeyNote is said by every store command: a backup is useless without its key file.
const masterKeyNote = "A backup holds connection secrets sealed only: keep the server's master key file " +
	"(<data>/master.key, or serve --master-key-file) with it; a restored server needs the same key file " +
	"to open them, and refuses to start with another."

func (c *cli) storeCommand() *command {
	return &command{
		name:  "store",
		short: "Back up, check and restore the server's store",
		long: "Back up a running server's store (a consistent snapshot over the API), check a store or\n" +
			"a backup offline, and restore a backup into a data directory.\n" + masterKeyNote,
		example: "plugboard store backup ./plugboard-backup.db\n" +
			"plugboard store check ./plugboard-backup.db\n" +
			"plugboard store restore ./plugboard-backup.db --data ./var-restored\n" +
			"cp ./var/master.key ./var-restored/master.key",
		sub: []*command{c.storeBackup(), c.storeCheck(), c.storeRestore(), c.storeMigrate()},
	}
}

func (c *cli) storeBackup() *command {
	var output outputFormat
	return &command{
		name:  "backup",
		args:  "FILE",
		short: "Write a consistent snapshot of the running server's store to FILE",
		long: "Back up the running server's store (GET /v1/store/backup, admin token): a consistent\n" +
			"snapshot taken while it keeps serving. FILE is written as FILE.tmp, checked, synced to\n" +
			"disk and renamed, so FILE is never a partial backup; - writes to stdout.\n" + masterKeyNote,
		example: "plugboard store backup ./plugboard-$(date +%F).db\nplugboard store backup - | gzip > backup.db.gz\n" +
			"plugboard store backup ./backup.db -o json | jq -r .master_key_id",
		nargs: exactArgs("FILE"),
		flags: func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			if args[0] == "-" && output == outputJSON {
				return usagef("-o json and FILE - both want standard output: back up to a file, or drop -o json")
			}
			if args[0] == "-" {
				b, err := c.api().Backup(ctx, c.stdout)
				if err == nil {
					fmt.Fprintf(c.stderr, "Backed up %d bytes (master key id %s). %s\n", b.Bytes, b.MasterKeyID, masterKeyNote)
				}
				return err
			}
			return c.backupToFile(ctx, args[0], output)
		},
	}
}

// backupToFile writes the backup to path.tmp, checks it, fsyncs it and renames it to path.
func (c *cli) backupToFile(ctx context.Context, path string, output outputFormat) (err error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	start := time.Now()
	b, err := c.api().Backup(ctx, f)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := registry.CheckStoreFile(tmp); err != nil {
		return fmt.Errorf("the backup did not pass its check, so %s was not written: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	syncDir(filepath.Dir(path))
	if output == outputJSON {
		fmt.Fprintln(c.stderr, masterKeyNote)
		return printJSONValue(c.stdout, map[string]any{"file": path, "bytes": b.Bytes, "master_key_id": b.MasterKeyID, "checked": true})
	}
	fmt.Fprintf(c.stdout, "Backed up %d bytes to %s in %s (checked; master key id %s).\n%s\n",
		b.Bytes, path, time.Since(start).Round(time.Millisecond), b.MasterKeyID, masterKeyNote)
	return nil
}

func (c *cli) storeCheck() *command {
	var data string
	var output outputFormat
	return &command{
		name:  "check",
		args:  "[FILE]",
		short: "Check a store or a backup for damage (offline)",
		long: "Check FILE (a backup), or the store of --data DIR (default PLUGBOARD_DATA or ./var), without\n" +
			"changing it: that it is whole and passes bbolt's consistency check. Prints OK or the\n" +
			"problems; exits 3 when the file is damaged. A running server holds its store locked:\n" +
			"check a backup of it instead.",
		example: "plugboard store check ./plugboard-backup.db\nplugboard store check --data ./var",
		flags: func(fs *flagSet) {
			fs.StringVar(&data, "data", "", "data directory whose plugboard.db to check (default PLUGBOARD_DATA or ./var)")
			outputFlag(fs, &output)
		},
		nargs: func(args []string) error {
			if len(args) > 1 {
				return fmt.Errorf("too many arguments: want at most FILE, got %q", args)
			}
			return nil
		},
		run: func(ctx context.Context, args []string) error {
			path := ""
			switch {
			case len(args) == 1 && data != "":
				return usagef("give FILE or --data DIR, not both")
			case len(args) == 1:
				path = args[0]
			case data != "":
				path = filepath.Join(data, "plugboard.db")
			default:
				path = filepath.Join(c.dataDir(), "plugboard.db")
			}
			fi, err := os.Stat(path)
			if err != nil {
				return err
			}
			if err := registry.CheckStoreFile(path); err != nil {
				return err
			}
			if output == outputJSON {
				return printJSONValue(c.stdout, map[string]any{"file": path, "bytes": fi.Size(), "ok": true})
			}
			fmt.Fprintf(c.stdout, "OK: %s (%d bytes) is whole and passes bbolt's consistency check.\n", path, fi.Size())
			return nil
		},
	}
}

func (c *cli) storeRestore() *command {
	var data string
	var force bool
	var output outputFormat
	return &command{
		name:  "restore",
		args:  "FILE",
		short: "Install a backup as the store of a data directory",
		long: "Check the backup FILE, then install it as --data DIR's plugboard.db (written as a\n" +
			"temporary file, synced and renamed). DIR must have no store yet unless --force, which\n" +
			"keeps the old one as plugboard.db.before-restore-<time>. Stop the server on DIR first.\n" +
			masterKeyNote + " Copy that key file to DIR/master.key before `plugboard serve --data DIR`.",
		example: "plugboard store restore ./plugboard-backup.db --data ./var-restored\n" +
			"cp /safe/place/master.key ./var-restored/master.key\nplugboard serve --data ./var-restored",
		flags: func(fs *flagSet) {
			fs.StringVar(&data, "data", "", "data directory to restore into (required)")
			fs.BoolVar(&force, "force", false, "replace the store DIR already has (kept as plugboard.db.before-restore-<time>)")
			outputFlag(fs, &output)
		},
		nargs: exactArgs("FILE"),
		run: func(ctx context.Context, args []string) error {
			if data == "" {
				return usagef("--data DIR is required: the data directory to restore into")
			}
			return c.restore(args[0], data, force, output)
		},
	}
}

// restore checks the backup and installs it as dir/plugboard.db.
func (c *cli) restore(backup, dir string, force bool, output outputFormat) error {
	if err := registry.CheckStoreFile(backup); err != nil {
		return fmt.Errorf("the backup %s cannot be restored: %w", backup, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	dst := filepath.Join(dir, "plugboard.db")
	kept := ""
	if fi, err := os.Stat(dst); err == nil && fi.Size() > 0 {
		if !force {
			return fmt.Errorf("%s already has a store (%d bytes): restore into an empty data directory, or pass --force to replace it (the old one is kept beside it)", dir, fi.Size())
		}
		if err := registry.CheckStoreFile(dst); errors.Is(err, storage.ErrLocked) {
			return fmt.Errorf("a running Plugboard holds %s: stop it before restoring into %s", dst, dir)
		}
		kept = dst + ".before-restore-" + time.Now().UTC().Format("20060102T150405Z")
	}
	if err := copyFileSynced(backup, dst+".restore.tmp"); err != nil {
		return err
	}
	if kept != "" {
		if err := os.Rename(dst, kept); err != nil {
			os.Remove(dst + ".restore.tmp")
			return err
		}
	}
	if err := os.Rename(dst+".restore.tmp", dst); err != nil {
		return err
	}
	syncDir(dir)
	key := filepath.Join(dir, storage.DefaultMasterKeyFileName)
	_, keyErr := os.Stat(key)
	if output == outputJSON {
		doc := map[string]any{"backup": backup, "store": dst, "master_key_file": key, "master_key_present": keyErr == nil}
		if kept != "" {
			doc["replaced_kept_as"] = kept
		}
		if keyErr != nil {
			fmt.Fprintf(c.stderr, "Now copy the backed-up server's master key file to %s (or pass serve --master-key-file).\n", key)
		}
		return printJSONValue(c.stdout, doc)
	}
	fmt.Fprintf(c.stdout, "Restored %s into %s.\n", backup, dst)
	if kept != "" {
		fmt.Fprintf(c.stdout, "The store it replaced is kept as %s.\n", kept)
	}
	if keyErr != nil {
		fmt.Fprintf(c.stdout, "Now copy the backed-up server's master key file to %s (or pass serve --master-key-file): without it the connection secrets do not open and the server refuses to start.\n", key)
	} else {
		fmt.Fprintf(c.stdout, "%s exists: the server checks at start that it opens the restored secrets.\n", key)
	}
	return nil
}

// copyFileSynced copies src to dst (mode 0600), synced to disk.
func copyFileSynced(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(dst)
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return out.Close()
}

// syncDir fsyncs a directory so a rename in it is durable; errors are ignored (not every
// file system supports it).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

func (c *cli) storeMigrate() *command {
	var from, to, prefix, key, creds, ca string
	var replicas int
	var output outputFormat
	return &command{
		name:  "migrate",
		short: "Copy a bbolt data directory's namespace into NATS JetStream",
		long: "Copy everything the bbolt store of --from DIR holds into the JetStream namespace --to\n" +
			"nats://... names (API.md \"Cluster\"): connector versions with their blobs, active versions\n" +
			"and canaries, connections with their secrets, API keys, MCP servers, timers, kv, trigger\n" +
			"sources with their cursors, event logs, subscriptions and queues, and the audit log.\n" +
			"Invocation logs and pending OAuth consents are not copied. Stop the server on DIR and\n" +
			"every node on the namespace first. Running it again copies nothing twice, so a migration\n" +
			"that stopped half-way is finished by running it again. Every node then needs the key\n" +
			"file --from used (DIR/master.key unless --master-key-file).",
		example: "plugboard store migrate --from ./var --to nats://127.0.0.1:4222\n" +
			"plugboard serve --store nats://127.0.0.1:4222 --master-key-file ./var/master.key --data ./node1",
		flags: func(fs *flagSet) {
			fs.StringVar(&from, "from", "", "data directory of the bbolt store to copy (required)")
			fs.StringVar(&to, "to", "", "the JetStream namespace to copy into: nats://HOST:PORT[,...] (required)")
			fs.StringVar(&prefix, "store-prefix", "plugboard", "prefix of the namespace's buckets and streams, as serve --store-prefix")
			fs.IntVar(&replicas, "store-replicas", 1, "JetStream replicas of buckets and streams it creates, as serve --store-replicas")
			fs.StringVar(&key, "master-key-file", "", "the master key file of --from (default DIR/master.key); the namespace is sealed with it too")
			fs.StringVar(&creds, "nats-creds", "", "NATS credentials file")
			fs.StringVar(&ca, "nats-tls-ca", "", "PEM file of the CA of the NATS servers")
			outputFlag(fs, &output)
		},
		nargs: exactArgs(),
		run: func(ctx context.Context, args []string) error {
			if from == "" || to == "" {
				return usagef("--from DIR and --to nats://HOST:PORT are both required")
			}
			if key == "" {
				key = filepath.Join(from, storage.DefaultMasterKeyFileName)
			}
			if _, err := os.Stat(filepath.Join(from, "plugboard.db")); err != nil {
				return fmt.Errorf("--from %s has no store (plugboard.db): %w", from, err)
			}
			src, err := registry.OpenStore(ctx, registry.StoreConfig{DataDir: from, MasterKeyFile: key})
			if errors.Is(err, storage.ErrLocked) {
				return fmt.Errorf("a running Plugboard holds %s: stop it before migrating: %w", from, err)
			}
			if err != nil {
				return err
			}
			defer src.Close()
			dst, err := registry.OpenStore(ctx, registry.StoreConfig{URL: to, MasterKeyFile: key, Prefix: prefix, Replicas: replicas,
				NATSCreds: creds, NATSTLSCA: ca, NodeName: "plugboard-store-migrate"})
			if err != nil {
				return err
			}
			defer dst.Close()
			start := time.Now()
			fmt.Fprintf(c.stderr, "Migrating %s into %s (prefix %s)...\n", from, to, prefix)
			rep, err := registry.Migrate(ctx, src, dst, func(kind string, copied, kept int) {
				fmt.Fprintf(c.stderr, "  %-12s %d copied, %d there already\n", kind, copied, kept)
			})
			if err != nil {
				return fmt.Errorf("%w (nothing copied so far is lost: run the same command again to finish)", err)
			}
			if output == outputJSON {
				return printJSONValue(c.stdout, map[string]any{"from": from, "to": to, "prefix": prefix,
					"master_key_file": key, "copied": rep.Copied, "kept": rep.Kept})
			}
			fmt.Fprintf(c.stdout, "Migrated %s into %s in %s: %d versions, %d connections, %d keys, %d MCP servers, %d trigger sources with %d events, %d audit entries copied.\n",
				from, to, time.Since(start).Round(time.Millisecond), rep.Copied["versions"], rep.Copied["connections"], rep.Copied["api_keys"],
				rep.Copied["mcp_servers"], rep.Copied["sources"], rep.Copied["events"], rep.Copied["audit"])
			fmt.Fprintf(c.stdout, "Start every node with --store %s --master-key-file %s.\n", to, key)
			return nil
		},
	}
}
