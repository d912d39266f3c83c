import type { ComponentChildren } from 'preact';
import { useId, useMemo, useState } from 'preact/hooks';

export interface Column<T> {
  key: string;
  label: string;
  /** What the column sorts by and what the filter searches; omit to make the column neither. */
  value?: (row: T) => string | number | null;
  render: (row: T) => ComponentChildren;
  numeric?: boolean;
}

interface Props<T> {
  caption: string;
  /** Said by the filter box's label: "Filter devices". */
  noun: string;
  rows: T[];
  columns: Array<Column<T>>;
  rowKey: (row: T) => string;
  initialSort?: { key: string; descending?: boolean };
  empty: ComponentChildren;
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

function compare(a: string | number | null, b: string | number | null): number {
  if (a === b) return 0;
  if (a === null) return 1; // blanks last, whichever the direction
  if (b === null) return -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return collator.compare(String(a), String(b));
}

/** A semantic table whose column headers sort (buttons, so the keyboard reaches them) and a filter box. */
export function DataTable<T>({ caption, noun, rows, columns, rowKey, initialSort, empty }: Props<T>) {
  const [sort, setSort] = useState(initialSort ?? { key: columns.find((c) => c.value)?.key ?? '', descending: false });
  const [filter, setFilter] = useState('');
  const filterId = useId();

  const shown = useMemo(() => {
    const words = filter.toLowerCase().split(/\s+/).filter(Boolean);
    const searchable = columns.filter((c) => c.value);
    const kept = words.length === 0 ? rows : rows.filter((r) => {
      const text = searchable.map((c) => String(c.value!(r) ?? '')).join(' ').toLowerCase();
      return words.every((w) => text.includes(w));
    });
    const column = columns.find((c) => c.key === sort.key);
    if (!column?.value) return kept;
    const sorted = [...kept].sort((a, b) => compare(column.value!(a), column.value!(b)));
    return sort.descending ? sorted.reverse() : sorted;
  }, [rows, columns, filter, sort]);

  const toggle = (key: string) => setSort((s) => ({ key, descending: s.key === key ? !s.descending : false }));

  return (
    <div class="table-block">
      <div class="table-tools">
        <label for={filterId}>Filter {noun}</label>
        <input id={filterId} type="search" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} autocomplete="off" />
        <span class="count">{shown.length === rows.length ? `${rows.length}` : `${shown.length} of ${rows.length}`} {noun}</span>
      </div>
      <div class="table-scroll">
        <table>
          <caption class="visually-hidden">{caption}{sort.key ? `, sorted by ${columns.find((c) => c.key === sort.key)?.label} ${sort.descending ? 'descending' : 'ascending'}` : ''}</caption>
          <thead>
            <tr>
              {columns.map((c) => (
                <th key={c.key} scope="col" class={c.numeric ? 'num' : undefined}
                  aria-sort={c.key === sort.key ? (sort.descending ? 'descending' : 'ascending') : c.value ? 'none' : undefined}>
                  {c.value
                    ? <button type="button" class="sort" onClick={() => toggle(c.key)}>{c.label}<span aria-hidden="true" class="arrow">{c.key === sort.key ? (sort.descending ? '▼' : '▲') : '↕'}</span></button>
                    : c.label}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {shown.length === 0
              ? <tr><td colSpan={columns.length} class="empty">{rows.length === 0 ? empty : `No ${noun} match “${filter}”.`}</td></tr>
              : shown.map((r) => (
                <tr key={rowKey(r)}>
                  {columns.map((c, i) => i === 0
                    ? <th key={c.key} scope="row" class={c.numeric ? 'num' : undefined}>{c.render(r)}</th>
                    : <td key={c.key} class={c.numeric ? 'num' : undefined}>{c.render(r)}</td>)}
                </tr>
              ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}
