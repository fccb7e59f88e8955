package ges

import (
	"context"
	"time"
)

// job is one request waiting for a group-commit writer.
type job[T any] struct {
	v    T
	done chan error // buffered; receives exactly one result
}

// batcher runs group commit: whatever is queued when a transaction starts
// shares it, up to max. Creates and ORS state reports each have one, so a
// burst costs one PostgreSQL transaction (and one fsync) per batch, not per
// request.
//
// With a linger, a batch whose predecessor was shared (requests are arriving
// faster than transactions commit) also waits up to that long for more. A
// lone request, as when the service is quiet, is committed at once.
type batcher[T any] struct {
	ch     chan *job[T]
	max    int
	commit func(ctx context.Context, batch []T) []error
	quit   <-chan struct{}
	done   chan struct{} // closed when run returns

	linger time.Duration
	timer  *time.Timer // for linger; owned by run
	shared bool        // the last batch held more than one request
}

func newBatcher[T any](max int, quit <-chan struct{}, commit func(context.Context, []T) []error) *batcher[T] {
	return &batcher[T]{ch: make(chan *job[T], 4*max), max: max, commit: commit, quit: quit, done: make(chan struct{})}
}

// run commits batches until quit closes, then drains what is already queued:
// those requests were promised an answer.
func (b *batcher[T]) run(ctx context.Context) {
	defer close(b.done)
	batch := make([]*job[T], 0, b.max)
	for {
		select {
		case j := <-b.ch:
			batch = b.fill(append(batch[:0], j))
			if b.shared && b.linger > 0 && len(batch) < b.max {
				batch = b.gather(batch)
			}
			b.shared = len(batch) > 1
			b.flush(ctx, batch)
		case <-b.quit:
			for {
				select {
				case j := <-b.ch:
					b.flush(context.WithoutCancel(ctx), b.fill(append(batch[:0], j)))
				default:
					return
				}
			}
		}
	}
}

// fill adds queued jobs to batch without waiting, up to the batch size.
func (b *batcher[T]) fill(batch []*job[T]) []*job[T] {
	for len(batch) < b.max {
		select {
		case j := <-b.ch:
			batch = append(batch, j)
		default:
			return batch
		}
	}
	return batch
}

// gather adds jobs to batch as they arrive, for up to the linger or until
// the batch is full.
func (b *batcher[T]) gather(batch []*job[T]) []*job[T] {
	if b.timer == nil {
		b.timer = time.NewTimer(b.linger)
	} else {
		b.timer.Reset(b.linger)
	}
	defer b.timer.Stop()
	for len(batch) < b.max {
		select {
		case j := <-b.ch:
			batch = append(batch, j)
		case <-b.timer.C:
			return batch
		case <-b.quit:
			return batch
		}
	}
	return batch
}

func (b *batcher[T]) flush(ctx context.Context, batch []*job[T]) {
	vs := make([]T, len(batch))
	for i, j := range batch {
		vs[i] = j.v
	}
	errs := b.commit(ctx, vs)
	for i, j := range batch {
		j.done <- errs[i]
	}
}

// submit queues v and waits for its batch to commit.
func (b *batcher[T]) submit(ctx context.Context, v T) error {
	j := &job[T]{v: v, done: make(chan error, 1)}
	select {
	case b.ch <- j:
	case <-b.quit:
		return errStopping
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-j.done:
		return err
	case <-b.done:
		select {
		case err := <-j.done:
			return err
		default:
			return errStopping
		}
	}
}
