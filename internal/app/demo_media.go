package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"time"

	"github.com/samizdat-im/samizdat/internal/media"
	"github.com/samizdat-im/samizdat/internal/messenger"
)

// demoPhoto has from send to a photo (drawn here: a sky, a sun, a lawn),
// as the web app sends one, and shows that it arrived: the message with
// its inline preview first, then the whole file, fetched in sealed chunks
// from the sender and checked, identical to what was sent.
func demoPhoto(ctx context.Context, w io.Writer, from, to *demoNode) error {
	photo, err := demoJPEG()
	if err != nil {
		return err
	}
	t0 := time.Now()
	m, err := from.node.Messenger.SendUpload(ctx, to.name, messenger.Upload{Name: "garden.jpg", MIME: "image/jpeg",
		Size: int64(len(photo)), Body: bytes.NewReader(photo)}, "The garden this morning")
	if err != nil {
		return fmt.Errorf("%s sends a photo: %w", from.name, err)
	}
	sent, err := from.node.Messenger.Media().Manifest(ctx, m.ID)
	if err != nil {
		return err
	}
	if err := waitState(ctx, from, to.name, m.ID, messenger.StateDelivered, 30*time.Second, func(state string) {
		fmt.Fprintf(w, "%s → %s: photo %s (%dx%d, %d KB, its %d-byte preview inline)  %s in %v\n", from.name, to.name,
			sent.Name, sent.Width, sent.Height, sent.Size/1024, len(sent.Thumbnail), state, time.Since(t0).Round(time.Millisecond))
	}); err != nil {
		return err
	}
	want, err := fileHash(from, m.ID)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ts, err := to.node.Messenger.Transfers(ctx)
		if err != nil {
			return err
		}
		for _, tr := range ts {
			if tr.MessageID != m.ID || tr.State != media.StateComplete {
				continue
			}
			got, err := fileHash(to, m.ID)
			if err != nil {
				return err
			}
			if got != want {
				return errors.New("the photo " + to.name + " received differs from the one sent")
			}
			fmt.Fprintf(w, "%s has %s's photo %v after it was sent: %d chunk(s), each checked, SHA-256 %x… as sent\n",
				to.name, from.name, time.Since(t0).Round(time.Millisecond), tr.Total, got[:6])
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New(to.name + " did not receive the photo")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// fileHash is the SHA-256 of the file of message id as p's node has it.
func fileHash(p *demoNode, id string) ([sha256.Size]byte, error) {
	svc := p.node.Messenger.Media()
	m, err := svc.Manifest(context.Background(), id)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	h := sha256.New()
	if err := media.WriteTo(svc.Chunks(), m, h); err != nil {
		return [sha256.Size]byte{}, err
	}
	return [sha256.Size]byte(h.Sum(nil)), nil
}

// demoJPEG draws the demo's photo.
func demoJPEG() ([]byte, error) {
	const w, h = 640, 480
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.RGBA{uint8(100 + y/5), uint8(160 + y/10), 235, 255}
			if dx, dy := x-480, y-110; dx*dx+dy*dy < 50*50 {
				c = color.RGBA{250, 210, 60, 255}
			}
			if y > 300+((x-320)*(x-320))/1500 {
				c = color.RGBA{uint8(40 + x/16), uint8(150 - (y-300)/4), 60, 255}
			}
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
