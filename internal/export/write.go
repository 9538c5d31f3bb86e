package export

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/profiled/profiled/internal/view"
	"github.com/profiled/profiled/profile"
)

// The formats Export writes.
const (
	FormatParquet = "parquet"
	FormatCSV     = "csv"
	FormatJSONL   = "jsonl"
)

// encoder writes profiles in one format.
type encoder interface {
	write([]Profile) (bad int, err error)
	// close writes what is buffered and the format's footer; it does not
	// close the underlying writer.
	close() error
}

func newEncoder(format string, w io.Writer, cols []Column, now time.Time) (encoder, error) {
	switch format {
	case FormatParquet:
		return newParquet(w, cols), nil
	case FormatCSV:
		return newCSV(w, cols)
	case FormatJSONL:
		return newJSONL(w, cols, now), nil
	}
	return nil, fmt.Errorf("--format %q: want parquet, csv or jsonl", format)
}

// rowsPerGroup bounds a Parquet row group: the writer holds one row group
// in memory (compressed pages) before it writes it, so this bounds the
// export's memory. 64Ki rows of typical profiles take a few tens of MB.
const rowsPerGroup = 64 << 10

func parquetOptions() []parquet.WriterOption {
	return []parquet.WriterOption{
		parquet.Compression(&parquet.Snappy),
		parquet.MaxRowsPerRowGroup(rowsPerGroup),
		parquet.CreatedBy("profilectl", "export", ""),
	}
}

// parquetAll writes every column, through parquet-go's generic writer.
type parquetAll struct {
	w    *parquet.GenericWriter[record]
	rows []record
}

// parquetSome writes the columns chosen with --fields: a struct type of
// those fields of record, made at run time, keeps their tags and so
// their types.
type parquetSome struct {
	w      *parquet.GenericWriter[any]
	typ    reflect.Type
	fields []int // index in record of each field of typ
}

func newParquet(w io.Writer, cols []Column) encoder {
	if len(cols) == len(Columns) {
		return &parquetAll{w: parquet.NewGenericWriter[record](w, parquetOptions()...)}
	}
	rt := reflect.TypeFor[record]()
	var sf []reflect.StructField
	var idx []int
	for _, c := range cols {
		i := columnIndex[c.Name]
		sf = append(sf, rt.Field(i))
		idx = append(idx, i)
	}
	typ := reflect.StructOf(sf)
	schema := parquet.SchemaOf(reflect.New(typ).Elem().Interface())
	return &parquetSome{w: parquet.NewGenericWriter[any](w, append(parquetOptions(), schema)...), typ: typ, fields: idx}
}

func (e *parquetAll) write(ps []Profile) (int, error) {
	e.rows = e.rows[:0]
	bad := 0
	for _, p := range ps {
		r, b := p.record()
		bad += b
		e.rows = append(e.rows, r)
	}
	_, err := e.w.Write(e.rows)
	return bad, err
}

func (e *parquetAll) close() error { return e.w.Close() }

func (e *parquetSome) write(ps []Profile) (int, error) {
	bad := 0
	rows := make([]any, len(ps))
	for k, p := range ps {
		r, b := p.record()
		bad += b
		full := reflect.ValueOf(r)
		row := reflect.New(e.typ)
		for j, i := range e.fields {
			row.Elem().Field(j).Set(full.Field(i))
		}
		rows[k] = row.Interface()
	}
	_, err := e.w.Write(rows)
	return bad, err
}

func (e *parquetSome) close() error { return e.w.Close() }

// csvEncoder writes a header of the column names, then one line per
// profile (Profile.csvValue).
type csvEncoder struct {
	w    *csv.Writer
	cols []Column
	line []string
}

func newCSV(w io.Writer, cols []Column) (*csvEncoder, error) {
	e := &csvEncoder{w: csv.NewWriter(w), cols: cols, line: make([]string, len(cols))}
	for i, c := range cols {
		e.line[i] = c.Name
	}
	return e, e.w.Write(e.line)
}

func (e *csvEncoder) write(ps []Profile) (int, error) {
	for _, p := range ps {
		for i, c := range e.cols {
			e.line[i] = p.csvValue(c)
		}
		if err := e.w.Write(e.line); err != nil {
			return 0, err
		}
	}
	return 0, e.w.Error()
}

func (e *csvEncoder) close() error {
	e.w.Flush()
	return e.w.Error()
}

// jsonlEncoder writes one profile per line, as the read API's JSON
// (view.Card's JSON, with anonymous_ids for users and age when the
// birthday gives one). With --fields it keeps only the keys of the listed
// columns: traits keeps every trait.<key>, birthday keeps age too.
type jsonlEncoder struct {
	w    *bufio.Writer
	keep map[string]bool // nil: every key
	now  time.Time
}

func newJSONL(w io.Writer, cols []Column, now time.Time) *jsonlEncoder {
	e := &jsonlEncoder{w: bufio.NewWriterSize(w, 256<<10), now: now}
	if len(cols) != len(Columns) {
		e.keep = map[string]bool{}
		for _, c := range cols {
			e.keep[c.Name] = true
		}
		if e.keep[profile.FieldBirthday] {
			e.keep["age"] = true
		}
	}
	return e
}

func (e *jsonlEncoder) write(ps []Profile) (int, error) {
	for _, p := range ps {
		card := view.NewLinked(p.ID, p.Fields, "", p.AnonymousIDs, e.now)
		var b []byte
		var err error
		if e.keep == nil {
			b, err = json.Marshal(card)
		} else {
			m := card.Map()
			for k := range m {
				if !e.keep[k] && !(e.keep[ColumnTraits] && strings.HasPrefix(k, profile.TraitPrefix)) {
					delete(m, k)
				}
			}
			b, err = json.Marshal(m)
		}
		if err != nil {
			return 0, err
		}
		e.w.Write(b)
		if err := e.w.WriteByte('\n'); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

func (e *jsonlEncoder) close() error { return e.w.Flush() }
