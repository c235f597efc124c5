"use client";

import type { ReactNode } from "react";
import {
  CartesianGrid,
  Legend,
  LineChart,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from "recharts";

const MARGIN = { top: 8, right: 16, bottom: 8, left: 0 };

/**
 * The frame every chart of the page shares: a line chart the width of its panel over `points`,
 * with a grid, a numeric x axis spanning the data, a tooltip and a legend. The lines are the
 * caller's, and so are the y axes when one plain axis does not fit. Without points it says
 * `empty`, when given. The test id carries the number of points, `attributes` more.
 */
export function ChartFrame({
  testId,
  points,
  x,
  yAxes,
  empty,
  attributes,
  children,
}: {
  testId: string;
  points: object[];
  x: { dataKey: string; unit?: string };
  yAxes?: ReactNode;
  empty?: string;
  attributes?: Record<`data-${string}`, string | number | undefined>;
  children: ReactNode;
}) {
  if (points.length === 0 && empty !== undefined) return <p className="muted">{empty}</p>;
  return (
    <div className="chart" data-testid={testId} data-points={points.length} {...attributes}>
      <ResponsiveContainer width="100%" height="100%">
        <LineChart data={points} margin={MARGIN}>
          <CartesianGrid strokeDasharray="3 3" stroke="#e5e7eb" />
          <XAxis dataKey={x.dataKey} type="number" domain={["dataMin", "dataMax"]} unit={x.unit} />
          {yAxes ?? <YAxis width={56} domain={["auto", "auto"]} />}
          <Tooltip />
          <Legend />
          {children}
        </LineChart>
      </ResponsiveContainer>
    </div>
  );
}
