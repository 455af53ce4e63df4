package traffic

import (
	"context"
	"crypto/tls"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/batonhq/baton/driver/pgdriver"
	"github.com/batonhq/baton/location"
)

// ShardRoute is where the writes of an account of shards (Redis,
// PostgreSQL) go: its primary site and each shard's server there.
type ShardRoute struct {
	Site      string
	URL       string // the site's registered URL, redis://SITE
	Epoch     uint64
	Endpoints []string
}

// LocationRoute resolves an account's route from the location service, as
// an application does.
func LocationRoute(loc *location.Client, account string) func(context.Context) (ShardRoute, error) {
	return func(ctx context.Context) (ShardRoute, error) {
		a, err := loc.Lookup(ctx, account)
		if err != nil {
			return ShardRoute{}, err
		}
		return ShardRoute{Site: a.Primary, URL: a.PrimaryURL, Epoch: a.Epoch, Endpoints: a.PrimaryEndpoints}, nil
	}
}

// ShardConfig configures a ShardWriter.
type ShardConfig struct {
	Account string
	// Kind is the store: location.KindRedis or location.KindPostgres.
	Kind string
	// Resolve answers the account's current route (LocationRoute).
	Resolve func(context.Context) (ShardRoute, error)
	// RunID prefixes every key so runs never collide (default: random).
	RunID string
	// TLS, User and Password are how the servers are called (User: the
	// application's PostgreSQL role; Redis's default user).
	TLS            *tls.Config
	User, Password string
}

// ShardWriter writes unique keys to every shard of an account of shards,
// one writer per shard: Redis SETs, PostgreSQL INSERTs as the application's
// role, each committed on its own. A write answered OK is acknowledged (an
// Ack: Partition the shard, Stamp the site). A write refused (Redis's
// READONLY once the shard's primary is demoted; PostgreSQL's terminated
// session or refused login once it is fenced) or failed on the way is
// not; the writer resolves the route again and goes on. A Redis write held
// by a fence waits for its answer, as an application's would.
type ShardWriter struct {
	cfg     ShardConfig
	mu      sync.Mutex
	acks    []Ack
	clients map[string]shardClient
	stop    chan struct{}
	wg      sync.WaitGroup
	acked   atomic.Int64
}

// NewShards returns a writer; nothing runs until Start.
func NewShards(cfg ShardConfig) *ShardWriter {
	if cfg.RunID == "" {
		cfg.RunID = newRunID()
	}
	return &ShardWriter{cfg: cfg, clients: map[string]shardClient{}, stop: make(chan struct{})}
}

// Start resolves the route and starts a writer per shard.
func (w *ShardWriter) Start(ctx context.Context) error {
	if w.cfg.Kind != location.KindRedis && w.cfg.Kind != location.KindPostgres {
		return fmt.Errorf("traffic to %s: kind %q: use %q or %q", w.cfg.Account, w.cfg.Kind, location.KindRedis, location.KindPostgres)
	}
	rt, err := w.cfg.Resolve(ctx)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", w.cfg.Account, err)
	}
	for shard := range rt.Endpoints {
		w.wg.Go(func() { w.write(shard, rt) })
	}
	return nil
}

// write is shard's writer: keys ACCOUNT-RUN-<shard>-<n>, in order, until
// Stop.
func (w *ShardWriter) write(shard int, rt ShardRoute) {
	ctx := context.Background()
	for n := 0; ; n++ {
		select {
		case <-w.stop:
			return
		default:
		}
		key := fmt.Sprintf("%s-%s-%d-%d", w.cfg.Account, w.cfg.RunID, shard, n)
		err := w.client(rt.Endpoints[shard]).set(ctx, key, ValueFor(key))
		if err == nil {
			w.mu.Lock()
			w.acks = append(w.acks, Ack{Account: w.cfg.Account, Key: key, Value: ValueFor(key), Stamp: rt.Site,
				StampURL: rt.Endpoints[shard], Epoch: rt.Epoch, Partition: shard, At: time.Now()})
			w.mu.Unlock()
			w.acked.Add(1)
			continue
		}
		// A fenced or demoted primary answers at once: a short pause keeps
		// the writer from hammering it and the location service.
		select {
		case <-w.stop:
			return
		case <-time.After(5 * time.Millisecond):
		}
		if again, rerr := w.cfg.Resolve(ctx); rerr == nil && len(again.Endpoints) == len(rt.Endpoints) {
			rt = again
		}
	}
}

// client is the (cached) client of the server at addr.
func (w *ShardWriter) client(addr string) shardClient {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.clients[addr]
	if !ok {
		c = w.cfg.dial(addr)
		w.clients[addr] = c
	}
	return c
}

// AckCount is how many writes were acknowledged so far.
func (w *ShardWriter) AckCount() int64 { return w.acked.Load() }

// Stop ends the writers (each after its write in flight) and answers the
// acknowledged writes.
func (w *ShardWriter) Stop() []Ack {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	for addr, c := range w.clients {
		c.close()
		delete(w.clients, addr)
	}
	return w.acks
}

// AuditShards reads every acknowledged key back from the account's current
// primaries (cfg.Resolve) and counts the lost and the changed ones; an
// audit of nothing acknowledged fails (AuditReport.Err), as for stamps.
func AuditShards(ctx context.Context, cfg ShardConfig, acks []Ack) (AuditReport, error) {
	start := time.Now()
	rep := AuditReport{Account: cfg.Account, Acks: len(acks), Checked: len(acks)} // rep.Err fails 0 acks
	rt, err := cfg.Resolve(ctx)
	if err != nil {
		return rep, fmt.Errorf("audit %s: resolve: %w", cfg.Account, err)
	}
	rep.Stamp, rep.StampURL, rep.Epoch = rt.Site, rt.URL, rt.Epoch
	w := NewShards(cfg)
	defer w.Stop()
	byShard := map[int][]Ack{}
	for _, a := range acks {
		byShard[a.Partition] = append(byShard[a.Partition], a)
	}
	shards := make([]int, 0, len(byShard))
	for s := range byShard {
		shards = append(shards, s)
	}
	sort.Ints(shards)
	for _, s := range shards {
		if s >= len(rt.Endpoints) {
			return rep, fmt.Errorf("audit %s: shard %d acknowledged, but the account has %d", cfg.Account, s, len(rt.Endpoints))
		}
		if err := auditShard(ctx, w.client(rt.Endpoints[s]), byShard[s], &rep); err != nil {
			return rep, fmt.Errorf("audit %s shard %d on %s: %w", cfg.Account, s, rt.Endpoints[s], err)
		}
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// auditShard reads a shard's acknowledged keys, 500 at a time.
func auditShard(ctx context.Context, c shardClient, acks []Ack, rep *AuditReport) error {
	for i := 0; i < len(acks); i += 500 {
		batch := acks[i:min(i+500, len(acks))]
		keys := make([]string, len(batch))
		for j, a := range batch {
			keys[j] = a.Key
		}
		vals, err := c.get(ctx, keys)
		if err != nil {
			return err
		}
		for _, a := range batch {
			got, ok := vals[a.Key]
			switch {
			case !ok:
				rep.Lost++
				if len(rep.LostKeys) < 20 {
					rep.LostKeys = append(rep.LostKeys, a.Key)
				}
			case got != a.Value:
				rep.Mismatched++
				if len(rep.Mismatches) < 20 {
					rep.Mismatches = append(rep.Mismatches, Mismatch{Key: a.Key, Want: a.Value, Got: got})
				}
			}
		}
	}
	return nil
}

// shardClient writes a key to and reads keys from one shard's server.
type shardClient interface {
	set(ctx context.Context, key, value string) error
	get(ctx context.Context, keys []string) (map[string]string, error)
	close()
}

// dial is the client of the server at addr for cfg's kind (connections
// are made on first use).
func (cfg ShardConfig) dial(addr string) shardClient {
	var tlsCfg *tls.Config
	if cfg.TLS != nil {
		tlsCfg = cfg.TLS.Clone()
	}
	if cfg.Kind == location.KindPostgres {
		return &pgShard{addr: addr, cfg: cfg, tls: tlsCfg}
	}
	// Reads wait long: a write held by a fence is answered when it ends.
	return redisShard{redis.NewClient(&redis.Options{Addr: addr, TLSConfig: tlsCfg, Username: cfg.User,
		Password: cfg.Password, ReadTimeout: 15 * time.Minute, MaxRetries: -1})}
}

// redisShard: SET and MGET.
type redisShard struct{ c *redis.Client }

func (r redisShard) set(ctx context.Context, key, value string) error {
	return r.c.Set(ctx, key, value, 0).Err()
}

func (r redisShard) get(ctx context.Context, keys []string) (map[string]string, error) {
	vals, err := r.c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(keys))
	for i, v := range vals {
		if s, ok := v.(string); ok {
			out[keys[i]] = s
		}
	}
	return out, nil
}

func (r redisShard) close() { _ = r.c.Close() }

// pgShard: one committed INSERT per write into PGTable, as the
// application's role; reads with SELECT ... WHERE k = ANY.
type pgShard struct {
	addr string
	cfg  ShardConfig
	tls  *tls.Config
	mu   sync.Mutex
	db   *pgxpool.Pool
}

// PGTable is the table the PostgreSQL writers write (k text primary key,
// v text).
const PGTable = "kv"

func (p *pgShard) pool(ctx context.Context) (*pgxpool.Pool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.db != nil {
		return p.db, nil
	}
	cfg, err := pgdriver.PoolConfig(p.addr, p.cfg.User, p.cfg.Password, p.tls)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 2
	p.db, err = pgxpool.NewWithConfig(ctx, cfg)
	return p.db, err
}

func (p *pgShard) set(ctx context.Context, key, value string) error {
	db, err := p.pool(ctx)
	if err != nil {
		return err
	}
	_, err = db.Exec(ctx, "INSERT INTO "+PGTable+" (k, v) VALUES ($1, $2)", key, value)
	return err
}

func (p *pgShard) get(ctx context.Context, keys []string) (map[string]string, error) {
	db, err := p.pool(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, "SELECT k, v FROM "+PGTable+" WHERE k = ANY($1)", keys)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]string, len(keys))
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, rows.Err()
}

func (p *pgShard) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.db != nil {
		p.db.Close()
	}
}
